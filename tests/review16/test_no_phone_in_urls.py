"""Adversarial review of issue 16: "no phone number in any URL or log". Each test states a defect."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from lizzy.phone import phone_from_ref, phone_ref
from tests.sessions_app.factories import SEED_PHONE

PHONE_DIGITS = SEED_PHONE.lstrip("+")
HREF = re.compile(r'(?:href|action)="([^"]*)"')
SEARCH_FORM = re.compile(r'<form[^>]*id="changelist-search"[^>]*>')


def test_a_live_session_link_survives_a_secret_key_rotation(settings):
    """Django's rotation: the old key moves to SECRET_KEY_FALLBACKS and what it signed still verifies.
    phone_ref/phone_from_ref only try SECRET_KEY: every bookmarked or e-mailed session link dies (404)."""
    settings.SECRET_KEY = "old-key-" + "x" * 50
    ref = phone_ref(SEED_PHONE)
    settings.SECRET_KEY = "new-key-" + "y" * 50
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "x" * 50]
    assert phone_from_ref(ref) == SEED_PHONE


@pytest.mark.parametrize(
    "changelist", ["sessions_app_handoffrequest", "sessions_app_smscontact", "sessions_app_customer"]
)
def test_admin_search_by_phone_does_not_put_the_number_in_the_url(ops_admin_client, changelist):
    """The live-session search is POSTed (no number in URLs); the ORM changelists that search by phone keep
    Django's GET form: searching a number puts ?q=+12065550100 in access logs and browser history."""
    page = ops_admin_client.get(reverse(f"admin:{changelist}_changelist")).content.decode()
    form = SEARCH_FORM.search(page)
    assert form, "no search form"
    assert 'method="get"' not in form.group(0), form.group(0)


def test_hand_off_search_result_links_do_not_echo_the_phone(ops_admin_client, db):
    """After a search, every link on the page (filters, sort headers, actions' redirect) carries ?q=<phone>."""
    from sessions_app.models import HandoffRequest

    HandoffRequest.objects.create(phone=SEED_PHONE, node="HUMAN_HANDOFF")
    page = ops_admin_client.get(
        reverse("admin:sessions_app_handoffrequest_changelist"), {"q": SEED_PHONE}
    ).content.decode()
    leaking = [href for href in HREF.findall(page) if PHONE_DIGITS in href.replace("%2B", "+")]
    assert leaking == []


def test_sms_contacts_list_masks_phones_like_the_live_sessions_list(ops_admin_client, db):
    """Issue 16: 'the hand-off list shows phone numbers in full while live sessions mask them'. Hand-offs are
    masked now; the SMS contacts list still shows every number in full."""
    from sessions_app.models import SmsContact

    SmsContact.objects.create(phone=SEED_PHONE)
    page = ops_admin_client.get(reverse("admin:sessions_app_smscontact_changelist")).content.decode()
    assert SEED_PHONE not in page


def test_cached_entries_filter_does_not_put_a_phone_in_the_url(ops_admin_client, db, settings):
    """The Redis filter of Cached entries is a GET form taking a phone prefix of up to 15 digits (a whole
    number): ?rq=+12065550100 is accepted, and the page links 'Invalidate all with this prefix' with it."""
    page = ops_admin_client.post(reverse("admin:sessions_cache_entries"), {"rq": SEED_PHONE}, follow=True)
    assert page.status_code == 200
    assert [url for url, _ in page.redirect_chain if PHONE_DIGITS in url.replace("%2B", "+")] == []
    html = page.content.decode()
    leaking = [href for href in HREF.findall(html) if PHONE_DIGITS in href.replace("%2B", "+")]
    assert leaking == [], leaking


def test_the_sealed_prefix_links_still_name_the_prefix(ops_admin_client, db, settings):
    """The Cached entries links carry the phone prefix sealed; following them reaches the same filter and the
    invalidate confirmation for that prefix."""
    html = ops_admin_client.post(reverse("admin:sessions_cache_entries"), {"rq": "+1206"}, follow=True).content.decode()
    link = re.search(r'id="redis-invalidate-prefix" href="([^"]*)"', html)
    assert link, "no prefix invalidation link"
    url = link.group(1).replace("&amp;", "&")
    assert "1206" not in url
    confirm = ops_admin_client.get(url)
    assert confirm.status_code == 200
    assert "session:+1206*" in confirm.content.decode()
