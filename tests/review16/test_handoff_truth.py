"""Adversarial review of issue 16: the hand-off flag on the session and the hand-off list must agree.

A reset (console or API PUT) clears ``handoff`` on the session ("nobody is waiting for a person any more"),
but the HandoffRequest row stays open; closing the row leaves the session saying someone is waiting."""

from __future__ import annotations

from urllib.parse import quote

from sessions_app.models import HandoffRequest
from sessions_app.services.ops import session_reset
from tests.sessions_app.factories import SEED_PHONE

URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"


def _waiting(sms):
    sms("hi")
    sms("5")
    assert HandoffRequest.objects.get(phone=SEED_PHONE).status == "open"


def test_a_console_reset_closes_the_open_hand_off(crm, sms, dynamodb, api_client):
    _waiting(sms)
    version = api_client.get(URL).json()["version"]
    session_reset(phone=SEED_PHONE, expected_version=version)
    assert api_client.get(URL).json()["handoff"] is False
    # the hand-off list still shows this customer as waiting for a person
    assert HandoffRequest.objects.get(phone=SEED_PHONE).status != "open"


def test_closing_the_hand_off_clears_the_session_flag(crm, sms, dynamodb, api_client, ops_admin_client):
    from django.urls import reverse

    _waiting(sms)
    handoff = HandoffRequest.objects.get(phone=SEED_PHONE)
    ops_admin_client.post(
        reverse("admin:sessions_app_handoffrequest_changelist"),
        {"action": "close_handoffs", "_selected_action": [handoff.pk]},
    )
    assert HandoffRequest.objects.get(pk=handoff.pk).status == "closed"
    assert api_client.get(URL).json()["handoff"] is False
