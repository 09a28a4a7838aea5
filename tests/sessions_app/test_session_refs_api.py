"""The session API addresses a session by an opaque reference (``ref``), not by its phone number: URLs reach
access logs, proxies and browser history. ``POST /api/v1/sessions/refs`` turns a phone (in the body) into its
ref; a phone in the path still answers, marked deprecated (``Deprecation`` and a ``Link`` to the ref URL)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from lizzy.phone import phone_ref
from tests.sessions_app.factories import SEED_PHONE, seed_session_document

PHONE_DIGITS = SEED_PHONE.lstrip("+")
REFS = "/api/v1/sessions/refs"


@pytest.fixture(autouse=True)
def customer(seed_customer):
    """The seed document names CUST123: a PUT checks that the customer exists."""


def _ref_url(client, phone: str) -> str:
    answer = client.post(REFS, {"phone": phone}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["url"]


def test_a_phone_in_the_body_gives_the_sessions_url(dynamodb, api_client):
    answer = api_client.post(REFS, {"phone": "(206) 555-0100"}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ref"] == phone_ref(SEED_PHONE)
    assert body["url"].endswith(f"/api/v1/sessions/{body['ref']}")
    assert PHONE_DIGITS not in body["url"]
    bad = api_client.post(REFS, {"phone": "not a phone"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_phone"
    assert api_client.post(REFS, {}, format="json").status_code == 400


def test_create_read_replace_delete_by_ref(dynamodb, api_client):
    url = _ref_url(api_client, SEED_PHONE)
    created = api_client.put(url, seed_session_document(), format="json")
    assert created.status_code == 201
    assert created.json()["ref"] == phone_ref(SEED_PHONE)
    assert "Deprecation" not in created
    read = api_client.get(url)
    assert read.status_code == 200
    assert read.json()["phone"] == SEED_PHONE
    assert "Deprecation" not in read
    # What GET returned goes back in a PUT, ref included (read-only).
    replaced = api_client.put(url, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert replaced.status_code == 200, replaced.content
    assert api_client.get(url, HTTP_IF_NONE_MATCH=replaced["ETag"]).status_code == 304
    assert api_client.delete(url).status_code == 204
    assert api_client.get(url).status_code == 404


def test_listed_sessions_carry_their_ref(dynamodb, api_client):
    api_client.put(_ref_url(api_client, SEED_PHONE), seed_session_document(), format="json")
    (listed,) = api_client.get("/api/v1/sessions/").json()["results"]
    assert listed["ref"] == phone_ref(SEED_PHONE)
    assert api_client.get(f"/api/v1/sessions/{listed['ref']}").json()["phone"] == SEED_PHONE


def test_a_phone_in_the_path_is_deprecated_and_points_to_the_ref(dynamodb, api_client):
    api_client.put(_ref_url(api_client, SEED_PHONE), seed_session_document(), format="json")
    old = api_client.get(f"/api/v1/sessions/{quote(SEED_PHONE)}")
    assert old.status_code == 200
    assert old["Deprecation"].startswith("@")  # RFC 9745: the date it was deprecated
    assert old["Link"] == f'<http://testserver/api/v1/sessions/{phone_ref(SEED_PHONE)}>; rel="successor-version"'


def test_a_ref_for_a_phone_with_a_mismatched_body_is_refused(dynamodb, api_client):
    url = _ref_url(api_client, SEED_PHONE)
    answer = api_client.put(url, {**seed_session_document(), "phone": "+14155550100"}, format="json")
    assert answer.status_code == 400


def test_the_schema_names_the_session_by_ref(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/v1/sessions/{phone}" not in schema["paths"]
    detail = schema["paths"]["/api/v1/sessions/{ref}"]
    (parameter,) = [p for p in detail["get"]["parameters"] if p["in"] == "path"]
    assert parameter["name"] == "ref"
    assert "deprecated" in parameter["description"].lower()
    assert "ref" in schema["components"]["schemas"]["SessionOutput"]["properties"]
    assert "post" in schema["paths"]["/api/v1/sessions/refs"]
    assert "/api/v1/sessions/{ref}/presence" in schema["paths"]
