"""Adversarial review of issue 16 / issue 13 item 10: the session API. Each test states a defect."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, quote, urlparse

import pytest

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.tables import SESSIONS
from tests.sessions_app.factories import SEED_PHONE, seed_session_document

URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"
DIGITS = re.compile(r"\d{7,}")


@pytest.fixture(autouse=True)
def customer(request):
    if "crm" not in request.fixturenames:
        request.getfixturevalue("seed_customer")


def test_list_next_link_does_not_carry_the_phone_number(dynamodb, api_client):
    """The list's ``next`` URL is base64 of {"phone": ...}: anyone (proxy logs, history) decodes the number."""
    for index in range(3):
        api_client.put(f"/api/v1/sessions/%2B1206555{index:04d}", seed_session_document(), format="json")
    page = api_client.get("/api/v1/sessions/", {"limit": 1}).json()
    assert page["next"]
    cursor = parse_qs(urlparse(page["next"]).query)["cursor"][0]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode(errors="replace")
    assert not DIGITS.search(decoded), f"the cursor decodes to {decoded!r}"


def test_if_match_with_a_weak_etag_is_not_a_match(dynamodb, api_client):
    """RFC 9110 13.1.1: If-Match uses the strong comparison; W/"1" never matches, a PUT must get 412."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.put(
        URL, seed_session_document(currentNode="TRANSACTIONS"), format="json", HTTP_IF_MATCH='W/"1"'
    )
    assert response.status_code == 412, response.status_code
    assert api_client.get(URL).json()["currentNode"] == "MAIN_MENU"


def test_if_match_accepts_a_list_of_etags(dynamodb, api_client):
    """RFC 9110: If-Match = "*" / #entity-tag. A list that contains the current ETag is a match, not a 400."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.put(
        URL, seed_session_document(currentNode="TRANSACTIONS"), format="json", HTTP_IF_MATCH='"7", "1"'
    )
    assert response.status_code == 200, (response.status_code, response.content)


def test_put_honours_if_none_match_star_create_only(dynamodb, api_client):
    """``If-None-Match: *`` on a PUT means "only if absent": on an existing session it is 412, not 428."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.put(URL, seed_session_document(), format="json", HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 412, response.status_code


def test_put_does_not_ignore_a_failing_if_none_match(dynamodb, api_client):
    """If-Match passes, If-None-Match names the current ETag: RFC 9110 13.2.2 says 412; the PUT is applied."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.put(
        URL,
        seed_session_document(currentNode="TRANSACTIONS"),
        format="json",
        HTTP_IF_MATCH='"1"',
        HTTP_IF_NONE_MATCH='"1"',
    )
    assert response.status_code == 412, response.status_code
    assert api_client.get(URL).json()["version"] == 1


def test_list_node_filter_refuses_an_unknown_node(dynamodb, api_client):
    """PUT refuses currentNode NOPE with 400; the list answers 200 [] for node=NOPE (a typo looks like 'none')."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.get("/api/v1/sessions/", {"node": "main_menu"})
    assert response.status_code == 400, (response.status_code, response.content)
    assert "node" in response.json()["error"]["details"]


def test_get_body_put_back_unchanged_after_the_customer_left_the_crm(dynamodb, api_client):
    """GET -> PUT of the very same body must succeed; a session naming a customer since removed from the CRM
    cannot be written back at all (400 'No customer'), so a client cannot even reset its node."""
    from sessions_app.models import Customer

    api_client.put(URL, seed_session_document(), format="json")
    Customer.objects.filter(customer_id="CUST123").delete()
    read = api_client.get(URL)
    response = api_client.put(URL, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "value",
    [
        10**40,  # DynamoDB numbers: 38 digits of precision
        1e-200,  # below DynamoDB's smallest magnitude (1E-130)
        {"": 1},  # an empty map key
    ],
    ids=["40-digit", "tiny-float", "empty-key"],
)
def test_session_data_dynamodb_cannot_store_is_a_400_not_a_500(dynamodb, api_client, value):
    body = seed_session_document(sessionData={"x": value})
    response = api_client.put(URL, body, format="json")
    assert response.status_code in (201, 400), (response.status_code, response.content[:300])
    if response.status_code == 201:  # when accepted, what GET returns is what was written
        stored = api_client.get(URL).json()["sessionData"]["x"]
        assert stored == value, (stored, value)
    else:
        assert dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE}) is None


def test_huge_current_node_is_not_echoed_back_in_full(dynamodb, api_client):
    """The unknown-node message quotes the input: a 1 MB node comes back in the 400 body, and in any log of it."""
    response = api_client.put(URL, seed_session_document(currentNode="N" * 200_000), format="json")
    assert response.status_code == 400
    assert len(response.content) < 20_000, len(response.content)


def test_get_body_put_back_unchanged_with_an_attribute_the_store_carries(dynamodb, api_client):
    """The store keeps every attribute it does not own in ``extra`` and GET returns it (a legacy copy, another
    writer); PUT refuses any name it does not list ("Unknown attribute"), so that GET body cannot go back."""
    api_client.put(URL, seed_session_document(), format="json")
    item = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE})
    item["channel"] = "sms"
    dynamodb_put_item(table=SESSIONS.name, item=item)
    read = api_client.get(URL)
    assert read.json()["channel"] == "sms"
    response = api_client.put(URL, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert response.status_code == 200, response.content


def test_the_schema_documents_the_conditional_answers(db):
    """Issue 16: "validate, answer 400 with the field named, document". The PUT answers 400, 412 and 428 and
    GET answers 304/404, but the schema documents only 200/201 for PUT: a generated client knows none of them."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    detail = schema["paths"]["/api/v1/sessions/{ref}"]
    assert {"400", "412", "428"} <= set(detail["put"]["responses"]), sorted(detail["put"]["responses"])
    assert "404" in detail["get"]["responses"], sorted(detail["get"]["responses"])
    assert "400" in schema["paths"]["/api/v1/sessions/"]["get"]["responses"]


@pytest.mark.parametrize("limit", ["1_0", "\u0663", "1e3", "-1", "5.5", "0"])
def test_list_limit_is_a_plain_decimal_number(dynamodb, api_client, limit):
    """limit=1_0 is taken as 10 and limit=٣ (Arabic-Indic three) as 3: Python's int() rules, not a number."""
    response = api_client.get("/api/v1/sessions/", {"limit": limit})
    assert response.status_code == 400, (limit, response.status_code)
    assert set(response.json()["error"]["details"]) == {"limit"}


def test_two_writers_with_the_same_if_match_one_wins_and_the_other_is_told(dynamodb, api_client, monkeypatch):
    """Writer B replaces version 1 between writer A's read and A's write: A's conditional write must fail with
    a 412 (the precondition, now false) and B's data must survive. The view reads ``current`` itself, so we
    hand it the version-1 copy A would have read."""
    from sessions_app.apis import sessions as api

    api_client.put(URL, seed_session_document(), format="json")
    stale = api.session_get(phone=SEED_PHONE)
    assert (
        api_client.put(
            URL, seed_session_document(currentNode="TRANSACTIONS"), format="json", HTTP_IF_MATCH='"1"'
        ).status_code
        == 200
    )  # writer B
    monkeypatch.setattr(api, "session_get", lambda phone: stale)
    response = api_client.put(URL, seed_session_document(currentNode="PARTS_LIST"), format="json", HTTP_IF_MATCH='"1"')
    monkeypatch.undo()
    assert response.status_code == 412, (response.status_code, response.content)
    assert api_client.get(URL).json()["currentNode"] == "TRANSACTIONS"


def test_delete_with_a_stale_if_match_is_412_not_404(dynamodb, api_client):
    """A check that holds (kept as a regression test): a stale DELETE is a 412 and deletes nothing."""
    api_client.put(URL, seed_session_document(), format="json")
    response = api_client.delete(URL, HTTP_IF_MATCH='"7"')
    assert api_client.get(URL).status_code == 200  # still there
    assert response.status_code == 412, (response.status_code, response.content)
