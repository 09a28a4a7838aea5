"""Adversarial review of issue 16: what the customer wrote only for callers with lizzy.read_customer_messages.

The masking covers turnLog.history[].in; the same words are kept elsewhere (sessionData.problemDescription,
ServiceRequest.problem_description) and reach callers without the permission."""

from __future__ import annotations

from urllib.parse import quote

from django.urls import reverse

from lizzy.phone import phone_ref
from tests.sessions_app.factories import SEED_PHONE

URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"
WORDS = "engine won't start"


def _problem_reported(sms):
    sms("hi")
    sms(WORDS)


def test_api_without_the_permission_does_not_get_the_customer_words(crm, sms, dynamodb, api_client, api_user):
    _problem_reported(sms)
    assert not api_user.has_perm("lizzy.read_customer_messages")
    body = api_client.get(URL).content.decode()
    assert "won't start" not in body, body[:600]


def test_api_list_without_the_permission_does_not_get_the_customer_words(crm, sms, dynamodb, api_client):
    _problem_reported(sms)
    body = api_client.get("/api/v1/sessions/").content.decode()
    assert "won't start" not in body, body[:600]


def test_viewer_session_page_does_not_show_the_customer_words(crm, sms, dynamodb, ops_viewer_client, ops_viewer):
    _problem_reported(sms)
    assert not ops_viewer.has_perm("lizzy.read_customer_messages")
    page = ops_viewer_client.get(reverse("admin:sessions_live_detail", args=[phone_ref(SEED_PHONE)]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "won&#x27;t start" not in html
    assert "won't start" not in html


def test_viewer_service_request_list_does_not_show_the_customer_words(crm, sms, dynamodb, ops_viewer_client):
    from sessions_app.models import ServiceRequest

    _problem_reported(sms)
    assert ServiceRequest.objects.filter(problem_description=WORDS).exists()
    page = ops_viewer_client.get(reverse("admin:sessions_app_servicerequest_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "won&#x27;t start" not in html
    assert "won't start" not in html


def test_crm_api_without_the_permission_does_not_get_the_customer_words(crm, sms, dynamodb, api_client, api_user):
    """/api/v1/crm/service-requests/ returns problemDescription (what the customer typed) to every reader:
    the API client role (a CRM integration's token) and viewers hold api_crm_read, not read_customer_messages."""
    _problem_reported(sms)
    assert not api_user.has_perm("lizzy.read_customer_messages")
    body = api_client.get("/api/v1/crm/service-requests/").content.decode()
    assert "won't start" not in body, body[:400]


def test_the_role_walk_covers_read_customer_messages():
    """tests/security/access_model.py walks routes, admin models and actions, but says nothing of who reads
    customer text (the brief: "the role walk must agree"): a viewer given the words, or an operator denied
    them, passes the whole permission model. Nothing in the model names the permission."""
    from tests.security import access_model

    names = {name for name in dir(access_model) if not name.startswith("_")}
    described = " ".join(repr(getattr(access_model, name)) for name in names)
    assert "read_customer_messages" in described


def test_turn_log_message_log_without_the_permission_does_not_carry_the_words(crm, sms, dynamodb, api_client):
    """Only history[].in is masked: messageLog[].effects keeps the service request's problem_description, the
    customer's words verbatim, in the very turnLog the claim says is filtered."""
    _problem_reported(sms)
    message_log = api_client.get(URL).json()["turnLog"]["messageLog"]
    effects = [effect for entry in message_log for effect in entry.get("effects", [])]
    assert all(WORDS not in str(effect) for effect in effects), effects
