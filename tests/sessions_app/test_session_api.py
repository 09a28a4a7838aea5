from urllib.parse import quote

import pytest

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item, dynamodb_scan
from lizzy.tables import SESSIONS
from tests.sessions_app.factories import SEED_PHONE, seed_session_document

URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"


def table_is_empty():
    return dynamodb_scan(table=SESSIONS.name).items == []


@pytest.mark.django_db
def test_every_endpoint_needs_a_token(dynamodb, anonymous_client):
    for method, url in [("get", URL), ("put", URL), ("delete", URL), ("get", "/api/v1/sessions/")]:
        response = getattr(anonymous_client, method)(url)
        assert response.status_code == 401, (method, url)
        assert response.json()["error"]["code"] == "not_authenticated"


def test_put_creates_then_get_returns_the_seed_shape_with_etag(dynamodb, api_client):
    created = api_client.put(URL, seed_session_document(), format="json")
    assert created.status_code == 201
    assert created["ETag"] == '"1"'
    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "phone",
        "customerId",
        "currentNode",
        "cachedData",
        "sessionData",
        "lastActivity",
        "ttl",
        "version",
    }
    assert body["phone"] == SEED_PHONE
    assert body["sessionData"]["selectedEquipmentName"] == "Honda HRX217"
    assert body["sessionData"]["partsOrderRequested"] is False
    assert body["lastActivity"].endswith("Z")
    assert response["ETag"] == '"1"'


def test_phone_in_the_url_is_normalised(dynamodb, api_client):
    api_client.put("/api/v1/sessions/(206)%20555-0100", seed_session_document(), format="json")
    assert api_client.get(URL).status_code == 200


def test_replace_requires_if_match_and_refuses_stale_versions(dynamodb, api_client):
    api_client.put(URL, seed_session_document(), format="json")
    changed = seed_session_document(currentNode="PARTS_FILTER_UNIT_TYPE")

    missing = api_client.put(URL, changed, format="json")
    assert missing.status_code == 428
    assert missing.json()["error"]["code"] == "precondition_required"

    stale = api_client.put(URL, changed, format="json", HTTP_IF_MATCH='"7"')
    assert stale.status_code == 412

    ok = api_client.put(URL, changed, format="json", HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200
    assert ok["ETag"] == '"2"'
    assert api_client.get(URL).json()["currentNode"] == "PARTS_FILTER_UNIT_TYPE"


def test_delete_ends_the_session(dynamodb, api_client):
    api_client.put(URL, seed_session_document(), format="json")
    assert api_client.delete(URL).status_code == 204
    assert api_client.get(URL).status_code == 404
    assert api_client.delete(URL).status_code == 404


@pytest.mark.parametrize("phone", ["not-a-phone", "12", "%2B1206555", "+" + "9" * 30])
def test_invalid_phone_is_a_400_and_nothing_is_written(dynamodb, api_client, phone):
    response = api_client.put(f"/api/v1/sessions/{phone}", seed_session_document(), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_phone"
    assert "valid phone number" in response.json()["error"]["message"]
    assert table_is_empty()


@pytest.mark.parametrize(
    "body",
    [
        {"currentNode": 5, "cachedData": "nope"},
        {"sessionData": [1, 2]},
        {"unexpected": True},
        {"phone": "+12065550199"},
        '{"cachedData": {"score": NaN}}',
        '{"cachedData": ',
    ],
)
def test_bad_bodies_are_400_and_nothing_is_written(dynamodb, api_client, body):
    if isinstance(body, str):
        response = api_client.put(URL, body, content_type="application/json")
    else:
        response = api_client.put(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert table_is_empty()


def test_oversize_session_is_refused_with_413_and_nothing_written(dynamodb, api_client):
    body = seed_session_document(cachedData={"customerProfile": {"notes": "x" * 420_000}})
    response = api_client.put(URL, body, format="json")
    assert response.status_code == 413
    assert "400 KB" in response.json()["error"]["message"]
    assert table_is_empty()


def test_expired_session_is_404_and_not_listed(dynamodb, api_client):
    api_client.put(URL, seed_session_document(), format="json")
    item = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE})
    item["ttl"] = 1731325500  # the seed's example: long past
    dynamodb_put_item(table=SESSIONS.name, item=item)
    assert api_client.get(URL).status_code == 404
    assert api_client.get("/api/v1/sessions/").json()["results"] == []
    # An expired session is absent: a client may create it again without If-Match.
    assert api_client.put(URL, seed_session_document(), format="json").status_code == 201


def test_list_filters_by_node_and_pages(dynamodb, api_client):
    for index in range(5):
        api_client.put(
            f"/api/v1/sessions/%2B1206555{index:04d}",
            seed_session_document(currentNode="MAIN_MENU" if index < 3 else "PARTS"),
            format="json",
        )
    first = api_client.get("/api/v1/sessions/", {"node": "MAIN_MENU", "limit": 2}).json()
    assert len(first["results"]) == 2
    assert first["next"]
    second = api_client.get(first["next"]).json()
    phones = {s["phone"] for s in first["results"] + second["results"]}
    assert phones == {"+12065550000", "+12065550001", "+12065550002"}
    assert second["next"] is None


def test_bad_cursor_is_a_400(dynamodb, api_client):
    response = api_client.get("/api/v1/sessions/", {"cursor": "garbage!!"})
    assert response.status_code == 400
