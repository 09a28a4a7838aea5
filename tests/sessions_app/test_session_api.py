from urllib.parse import quote

import pytest

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item, dynamodb_scan
from lizzy.tables import SESSIONS
from sessions_app.services.session_documents import CUSTOMER_TEXT_HIDDEN
from tests.sessions_app.factories import SEED_PHONE, seed_session_document

URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"


@pytest.fixture(autouse=True)
def customer(request):
    """The seed document names CUST123: a PUT checks that the customer exists (``crm`` creates it too)."""
    if "crm" not in request.fixturenames:
        request.getfixturevalue("seed_customer")


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
        "ref",
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
    changed = seed_session_document(currentNode="PARTS_UNIT_TYPE")

    missing = api_client.put(URL, changed, format="json")
    assert missing.status_code == 428
    assert missing.json()["error"]["code"] == "precondition_required"

    stale = api_client.put(URL, changed, format="json", HTTP_IF_MATCH='"7"')
    assert stale.status_code == 412

    ok = api_client.put(URL, changed, format="json", HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200
    assert ok["ETag"] == '"2"'
    assert api_client.get(URL).json()["currentNode"] == "PARTS_UNIT_TYPE"


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
            seed_session_document(currentNode="MAIN_MENU" if index < 3 else "PARTS_LIST"),
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


# --- Validation, conditional reads and the GET/PUT round trip (issues 13 and 16) -------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currentNode": "NOPE"}, "currentNode"),
        ({"currentNode": "main_menu"}, "currentNode"),  # node names are exact
        ({"customerId": 5}, "customerId"),
        ({"customerId": "CUST999"}, "customerId"),
        ({"customerId": ["CUST123"]}, "customerId"),
        ({"phone": 12065550100}, "phone"),
        ({"turnCount": "many"}, "turnCount"),
        ({"version": -1}, "version"),
    ],
)
def test_a_put_with_a_bad_field_is_a_400_naming_it_and_nothing_is_written(dynamodb, api_client, body, field):
    response = api_client.put(URL, seed_session_document(**body), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["message"]
    assert set(error["details"]) == {field}
    assert table_is_empty()


def test_an_unknown_node_lists_the_workflow_nodes(dynamodb, api_client):
    response = api_client.put(URL, seed_session_document(currentNode="NOPE"), format="json")
    message = response.json()["error"]["details"]["currentNode"][0]
    assert '"NOPE" is not a node' in message
    assert "MAIN_MENU" in message
    assert "HUMAN_HANDOFF" in message


def test_a_null_customer_is_an_unknown_caller(dynamodb, api_client):
    response = api_client.put(URL, seed_session_document(customerId=None), format="json")
    assert response.status_code == 201
    assert "customerId" not in api_client.get(URL).json()


def test_bad_list_parameters_are_a_400_naming_the_parameter(dynamodb, api_client):
    for params, field in [({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit")]:
        response = api_client.get("/api/v1/sessions/", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["message"] == f"Invalid {field}; see details."
        assert set(response.json()["error"]["details"]) == {field}


def test_if_none_match_answers_304_while_the_session_is_unchanged(dynamodb, api_client):
    etag = api_client.put(URL, seed_session_document(), format="json")["ETag"]
    for header in (etag, f"W/{etag}", f'"9", {etag}', "*"):
        cached = api_client.get(URL, HTTP_IF_NONE_MATCH=header)
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached["ETag"] == etag
    assert api_client.get(URL, HTTP_IF_NONE_MATCH='"2"').status_code == 200
    api_client.put(URL, seed_session_document(currentNode="TRANSACTIONS"), format="json", HTTP_IF_MATCH=etag)
    changed = api_client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["currentNode"] == "TRANSACTIONS"
    assert changed["ETag"] == '"2"'


def _workflow_session(crm, sms, text_turns):
    for text in text_turns:
        sms(text)
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE})


def test_get_then_put_round_trips_a_workflow_session(crm, sms, dynamodb, api_client):
    # given a session the SMS workflow wrote (turn log, turn count, opt-out flag)
    _workflow_session(crm, sms, ["hi", "1"])
    read = api_client.get(URL)
    document = read.json()
    assert {"turnLog", "turnCount", "optedOut", "lastActivity", "ttl", "version"} <= set(document)
    # turnLog is readable JSON, not a packed blob
    assert [turn["to"] for turn in document["turnLog"]["history"]] == ["MAIN_MENU", document["currentNode"]]
    assert document["turnLog"]["messageLog"][-1]["reply"]
    # when the client sends back exactly what it read, with one change
    document["sessionData"]["problemDescription"] = "Pull cord is stuck"
    replaced = api_client.put(URL, document, format="json", HTTP_IF_MATCH=read["ETag"])
    # then it is accepted, and the engine's attributes are the server's, not overwritten
    assert replaced.status_code == 200, replaced.content
    after = api_client.get(URL).json()
    stored = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE})
    assert stored["sessionData"]["problemDescription"] == "Pull cord is stuck"
    # what the customer wrote is masked for a caller without lizzy.read_customer_messages (review 16)...
    assert after["sessionData"]["problemDescription"] == CUSTOMER_TEXT_HIDDEN
    # ...and the masked body put back unchanged keeps the words, never writes the mask over them
    again = api_client.put(URL, after, format="json", HTTP_IF_MATCH=replaced["ETag"])
    assert again.status_code == 200, again.content
    stored = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE})
    assert stored["sessionData"]["problemDescription"] == "Pull cord is stuck"
    assert after["turnLog"] == document["turnLog"]
    assert after["turnCount"] == document["turnCount"] == 2
    assert after["version"] == document["version"] + 1


def test_read_only_fields_are_ignored_not_applied(crm, sms, dynamodb, api_client):
    _workflow_session(crm, sms, ["hi"])
    read = api_client.get(URL)
    forged = {
        **read.json(),
        "turnLog": {"history": [], "messageLog": []},
        "turnCount": 99,
        "optedOut": True,
        "ttl": 1,
        "lastActivity": "2000-01-01T00:00:00Z",
    }
    assert api_client.put(URL, forged, format="json", HTTP_IF_MATCH=read["ETag"]).status_code == 200
    after = api_client.get(URL).json()  # not expired by the forged ttl, not opted out
    assert after["turnCount"] == 1
    assert after["optedOut"] is False
    assert len(after["turnLog"]["history"]) == 1
    assert after["lastActivity"] > "2000-01-01"
    assert sms("1").reply  # an opted-out session would answer nothing


def test_a_body_version_other_than_the_current_one_is_refused(dynamodb, api_client):
    api_client.put(URL, seed_session_document(), format="json")
    stale = api_client.put(URL, seed_session_document(version=7), format="json", HTTP_IF_MATCH="*")
    assert stale.status_code == 412
    assert stale.json()["error"]["details"] == {"version": 1}
    assert api_client.get(URL).json()["version"] == 1
    ok = api_client.put(URL, seed_session_document(version=1), format="json", HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200


def test_a_put_that_moves_the_session_off_the_handoff_node_clears_handoff(crm, sms, dynamodb, api_client):
    # given a customer waiting for a person
    sms("hi")
    sms("5")
    read = api_client.get(URL)
    assert read.json()["currentNode"] == "HUMAN_HANDOFF"
    assert read.json()["handoff"] is True
    # a PUT that keeps the node keeps the flag
    same = api_client.put(URL, read.json(), format="json", HTTP_IF_MATCH=read["ETag"])
    assert same.json()["handoff"] is True
    # when an API client resets the node
    reset = api_client.put(URL, {**same.json(), "currentNode": "MAIN_MENU"}, format="json", HTTP_IF_MATCH=same["ETag"])
    # then nobody is waiting any more
    assert reset.status_code == 200
    assert reset.json()["handoff"] is False
    assert api_client.get(URL).json()["handoff"] is False


def test_the_schema_lists_every_field_get_returns(db):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    output = schema["components"]["schemas"]["SessionOutput"]["properties"]
    assert {"turnLog", "turnCount", "optedOut", "handoff", "lastActivity", "ttl", "version"} <= set(output)
    turn_log = schema["components"]["schemas"]["TurnLog"]["properties"]
    assert set(turn_log) == {"history", "messageLog"}
    put = schema["paths"]["/api/v1/sessions/{ref}"]["put"]
    request_ref = put["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    accepted = set(schema["components"]["schemas"][request_ref]["properties"])
    assert set(output) <= accepted  # what GET returns, PUT accepts
    node_ref = schema["components"]["schemas"][request_ref]["properties"]["currentNode"]
    assert "HUMAN_HANDOFF" in str(node_ref) or "$ref" in str(node_ref)
    assert "304" in schema["paths"]["/api/v1/sessions/{ref}"]["get"]["responses"]


def test_what_the_customer_wrote_reaches_only_callers_allowed_to_read_it(crm, sms, dynamodb, api_client, api_user):
    from django.contrib.auth.models import Permission

    sms("hi")
    sms("engine won't start")
    # an API client without the permission: the turns, not the words
    history = api_client.get(URL).json()["turnLog"]["history"]
    assert [entry["inLen"] for entry in history] == [2, 18]
    assert all("in" not in entry for entry in history)
    listed = api_client.get("/api/v1/sessions/").json()["results"][0]["turnLog"]["history"]
    assert all("in" not in entry for entry in listed)
    # with lizzy.read_customer_messages (operators have it), the words too
    api_user.user_permissions.add(Permission.objects.get(codename="read_customer_messages"))
    api_user = type(api_user).objects.get(pk=api_user.pk)  # a fresh permission cache
    history = api_client.get(URL).json()["turnLog"]["history"]
    assert [entry["in"] for entry in history] == ["hi", "engine won't start"]
