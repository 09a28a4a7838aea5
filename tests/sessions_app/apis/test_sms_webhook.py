"""The Twilio webhook: TwiML, signatures, the seed's conversation over HTTP, bad input."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.test import APIClient
from twilio.request_validator import RequestValidator

from lizzy.dynamodb import dynamodb_scan
from lizzy.tables import SESSIONS
from sessions_app.apis import sms as sms_api
from sessions_app.models import PartsOrder, ServiceRequest, SmsContact
from tests.fixtures.crm import SEED_PHONE, stored_session

URL = "/api/v1/sms/inbound"
FORM = "application/x-www-form-urlencoded"
ROOT = Path(__file__).resolve().parents[3]


def post(client, body=None, *, sid="SM0001", sender=SEED_PHONE, extra=None, headers=None, raw=None):
    fields = {"From": sender, "To": "+18005551212", "Body": body, "MessageSid": sid, **(extra or {})}
    fields = {k: v for k, v in fields.items() if v is not None}
    data = raw if raw is not None else urlencode(fields)
    return client.post(URL, data=data, content_type=FORM, **(headers or {}))


def message_of(response):
    assert response["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)  # noqa: S314 - our own response
    assert root.tag == "Response"
    messages = root.findall("Message")
    return messages[0].text if messages else None


def nothing_stored():
    return dynamodb_scan(table=SESSIONS.name).items == []


@pytest.fixture
def client():
    return APIClient(enforce_csrf_checks=True)  # Twilio has no CSRF token: the webhook must not need one


def test_the_seed_conversation_over_http(crm, dynamodb, client):
    """+12065550100 selects the Honda HRX217, reports "Engine won't start", orders a part."""
    script = [
        ("Hi", "MAIN_MENU", {}),
        ("1", "SELECT_EQUIPMENT", {}),
        (
            "1",
            "EQUIPMENT_MENU",
            {
                "selectedEquipmentId": "EQ123",
                "selectedEquipmentName": "Honda HRX217",
                "selectedEquipmentSN": "MZCG-1234567",
                "filterUnitType": "Mowers",
                "filterModel": "HRX217",
            },
        ),
        ("2", "PROBLEM_DESCRIPTION", {}),
        ("Engine won't start", "EQUIPMENT_MENU", {"problemDescription": "Engine won't start"}),
        ("1", "PARTS_LIST", {}),
        ("1", "PARTS_ORDER_CONFIRM", {"selectedPartSku": "HONHRX217-AF"}),
        ("1", "MAIN_MENU", {"partsOrderRequested": True}),
    ]
    expected_data = {"partsOrderRequested": False}
    for turn, (text, node, data) in enumerate(script, start=1):
        response = post(client, text, sid=f"SM{turn:032d}")
        assert response.status_code == 200, response.content
        assert message_of(response)
        item = stored_session()
        expected_data.update(data)
        assert item["currentNode"] == node, text
        assert {k: item["sessionData"].get(k) for k in expected_data} == expected_data
        assert item["customerId"] == "CUST123"
        assert item["turnCount"] == turn
        assert item["cachedData"]["customerProfile"]["equipment"][0]["equipmentId"] == "EQ123"
        assert item["cachedData"]["profileCacheTime"].endswith("Z")
    assert ServiceRequest.objects.get().problem_description == "Engine won't start"
    assert PartsOrder.objects.get().lines[0]["sku"] == "HONHRX217-AF"


def test_the_reply_is_twiml_from_the_twilio_package(crm, dynamodb, client):
    response = post(client, "hi")
    assert response.status_code == 200
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi Jordan!')
    assert "1) My equipment" in message_of(response)


def test_a_retried_delivery_gets_the_same_reply(crm, dynamodb, client):
    post(client, "hi", sid="SMa")
    first = post(client, "1", sid="SMb")
    again = post(client, "1", sid="SMb")
    assert again.content == first.content
    assert stored_session()["turnCount"] == 2


def test_an_opted_out_number_gets_an_empty_response(crm, dynamodb, client):
    post(client, "hi", sid="SMa")
    response = post(client, "STOP", sid="SMb")
    assert response.status_code == 200
    assert message_of(response) is None
    assert SmsContact.objects.get().opted_out is True
    assert message_of(post(client, "START", sid="SMc")).startswith("You're subscribed again.")


def sign(url, params, token="secret-token"):  # noqa: S107
    return RequestValidator(token).compute_signature(url, params)


def signed_fields():
    return {"From": SEED_PHONE, "To": "+18005551212", "Body": "hi", "MessageSid": "SM0001", "NumMedia": "0"}


def test_a_valid_signature_is_accepted(crm, dynamodb, client, settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    fields = signed_fields()
    signature = sign(f"http://testserver{URL}", fields)
    response = client.post(URL, data=urlencode(fields), content_type=FORM, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200


def test_the_public_base_url_is_what_gets_signed_behind_a_proxy(crm, dynamodb, client, settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.LIZZY_WEBHOOK_BASE_URL = "https://sms.dealer.example/"
    fields = signed_fields()
    good = sign(f"https://sms.dealer.example{URL}", fields)
    internal = sign(f"http://testserver{URL}", fields)
    assert client.post(URL, urlencode(fields), content_type=FORM, HTTP_X_TWILIO_SIGNATURE=internal).status_code == 403
    assert client.post(URL, urlencode(fields), content_type=FORM, HTTP_X_TWILIO_SIGNATURE=good).status_code == 200


@pytest.mark.parametrize(
    ("signature", "message"),
    [(None, sms_api.ERR_SIGNATURE_MISSING), ("bm90LXRoZS1zaWduYXR1cmU=", sms_api.ERR_SIGNATURE_INVALID)],
)
def test_a_missing_or_wrong_signature_is_403_and_changes_nothing(crm, dynamodb, client, settings, signature, message):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    response = client.post(URL, data=urlencode(signed_fields()), content_type=FORM, **headers)
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "invalid_signature", "message": message, "details": None}
    assert nothing_stored()


def test_a_tampered_body_fails_the_signature(crm, dynamodb, client, settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    fields = signed_fields()
    signature = sign(f"http://testserver{URL}", fields)
    fields["Body"] = "6"
    assert client.post(URL, urlencode(fields), content_type=FORM, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    assert nothing_stored()


def test_twilio_documentation_example_validates_through_our_url_logic(settings):
    """FACTS.md: Twilio's documented example, token 12345 → 0/KCTR6DLpKmkAf8muzZqo1nDgQ=."""
    settings.TWILIO_AUTH_TOKEN = "12345"
    settings.LIZZY_WEBHOOK_BASE_URL = "https://mycompany.com"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    body = urlencode(params).encode()

    def request_signed(signature):
        django_request = RequestFactory().post(
            "/myapp.php?foo=1&bar=2", data=body, content_type=FORM, HTTP_X_TWILIO_SIGNATURE=signature
        )
        return Request(django_request)

    sms_api._check_signature(request_signed("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), sms_api._form(body))  # no raise
    with pytest.raises(sms_api.SignatureInvalid):
        sms_api._check_signature(request_signed("1/KCTR6DLpKmkAf8muzZqo1nDgQ="), sms_api._form(body))


BAD_INPUT = [
    ("missing From", {"sender": None, "body": "hi"}, 400, sms_api.ERR_FROM_MISSING),
    ("invalid From", {"sender": "not-a-phone", "body": "hi"}, 400, "is not a valid phone number"),
    ("empty Body", {"body": ""}, 400, sms_api.ERR_BODY_EMPTY),
    ("blank Body", {"body": "   "}, 400, sms_api.ERR_BODY_EMPTY),
    ("no Body", {"body": None}, 400, sms_api.ERR_BODY_EMPTY),
    ("10 KB Body", {"body": "x" * 10240}, 400, "Body has 10240 characters; an SMS carries at most 1600."),
    ("missing MessageSid", {"body": "hi", "sid": None}, 400, sms_api.ERR_SID_MISSING),
    ("odd MessageSid", {"body": "hi", "sid": "SM<script>"}, 400, sms_api.ERR_SID_INVALID),
    ("invalid UTF-8", {"raw": b"From=%2B12065550100&Body=caf%E9&MessageSid=SM1"}, 400, sms_api.ERR_NOT_UTF8),
    ("raw invalid UTF-8", {"raw": b"From=%2B12065550100&Body=\xff\xfe&MessageSid=SM1"}, 400, sms_api.ERR_NOT_UTF8),
]


@pytest.mark.parametrize(("case", "kwargs", "status", "message"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_a_clear_4xx_and_changes_nothing(crm, dynamodb, client, case, kwargs, status, message):
    response = post(client, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert nothing_stored()
    assert not SmsContact.objects.exists()


def test_json_is_refused_with_415(dynamodb, client):
    response = client.post(URL, data={"From": SEED_PHONE, "Body": "hi", "MessageSid": "SM1"}, format="json")
    assert response.status_code == 415
    assert response.json()["error"]["message"] == sms_api.ERR_CONTENT_TYPE
    assert nothing_stored()


def test_get_is_not_allowed(dynamodb, client):
    assert client.get(URL).status_code == 405


def _views(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            yield getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)


def test_the_webhook_is_the_only_view_open_to_anonymous_callers():
    open_views = {
        name
        for view in _views(get_resolver().url_patterns)
        if view is not None and (name := view.__name__)
        if any(p is AllowAny for p in getattr(view, "permission_classes", [])) and not name.startswith("Spectacular")
    }
    assert open_views == {"SmsInboundApi"}


def test_production_refuses_to_start_without_a_twilio_token():
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TWILIO_"))}
    environment.update(DJANGO_SETTINGS_MODULE="lizzy.settings.production", DJANGO_SECRET_KEY="x" * 60)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Set the TWILIO_AUTH_TOKEN environment variable." in result.stderr
