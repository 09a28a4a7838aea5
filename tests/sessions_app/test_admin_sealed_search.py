"""Changelist searches that may name a phone (or an e-mail) never put it in a URL: the form is POSTed, the term
is sealed (AES-SIV, like session links) into ``q``, and every link the page makes carries only the seal."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from lizzy.phone import search_from_ref, search_ref
from tests.sessions_app.factories import SEED_PHONE

PHONE_DIGITS = SEED_PHONE.lstrip("+")
LINKS = re.compile(r'(?:href|action)="([^"]*)"')
CHANGELISTS = ["sessions_app_handoffrequest", "sessions_app_smscontact", "sessions_app_customer"]


@pytest.fixture
def rows(db):
    from sessions_app.models import Customer, HandoffRequest, SmsContact

    jordan = Customer.objects.create(
        customer_id="CUST123", phone=SEED_PHONE, name="Jordan Lee", email="jordan@example.com"
    )
    Customer.objects.create(customer_id="CUST999", phone="+14155550100", name="Sam Roe")
    HandoffRequest.objects.create(phone=SEED_PHONE, customer=jordan, node="HUMAN_HANDOFF")
    HandoffRequest.objects.create(phone="+14155550100", node="HUMAN_HANDOFF")
    SmsContact.objects.create(phone=SEED_PHONE)
    SmsContact.objects.create(phone="+14155550100")


def _leaks(html: str, *needles: str) -> list[str]:
    links = [unescape(link).replace("%2B", "+").replace("%40", "@") for link in LINKS.findall(html)]
    return [link for link in links if any(needle in link for needle in needles)]


def _search(client, changelist: str, term: str, **filters: str):
    url = reverse(f"admin:{changelist}_changelist")
    if filters:
        url += "?" + "&".join(f"{name}={value}" for name, value in filters.items())
    return client.post(url, {"q": term})


@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_a_phone_search_is_posted_then_sealed_into_the_url(ops_admin_client, rows, changelist):
    answer = _search(ops_admin_client, changelist, SEED_PHONE)
    assert answer.status_code == 303
    location = answer["Location"]
    assert PHONE_DIGITS not in location.replace("%2B", "+")
    sealed = parse_qs(urlsplit(location).query)["q"][0]
    assert search_from_ref(sealed) == SEED_PHONE

    page = ops_admin_client.get(location)
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1  # the search ran on the number itself
    assert f'value="{SEED_PHONE}"' in html  # the search box shows what was typed
    assert _leaks(html, PHONE_DIGITS) == []
    assert 'method="post"' in re.search(r'<form[^>]*id="changelist-search"[^>]*>', html).group(0)


def test_result_links_carry_only_the_seal_and_lead_back_to_the_search(ops_admin_client, rows):
    location = _search(ops_admin_client, "sessions_app_handoffrequest", SEED_PHONE, status__exact="open")["Location"]
    assert parse_qs(urlsplit(location).query)["status__exact"] == ["open"]  # filters survive the search
    html = ops_admin_client.get(location).content.decode()
    change_link = re.search(r'href="([^"]*/change/\?_changelist_filters=[^"]*)"', html).group(1)
    preserved = parse_qs(parse_qs(urlsplit(unescape(change_link)).query)["_changelist_filters"][0])
    assert search_from_ref(preserved["q"][0]) == SEED_PHONE
    assert _leaks(html, PHONE_DIGITS) == []


def test_names_and_emails_are_still_searchable_and_sealed(ops_admin_client, rows):
    for term, found in (("Jordan", 1), ("jordan@example.com", 1), ("CUST", 2), ("nobody", 0)):
        location = _search(ops_admin_client, "sessions_app_customer", term)["Location"]
        assert "jordan" not in location.lower()
        page = ops_admin_client.get(location)
        assert page.context["cl"].result_count == found, term
        assert _leaks(page.content.decode(), "jordan@example.com") == []


def test_an_empty_search_clears_the_term(ops_admin_client, rows):
    location = _search(ops_admin_client, "sessions_app_smscontact", "  ", o="1")["Location"]
    assert "q" not in parse_qs(urlsplit(location).query)
    assert ops_admin_client.get(location).context["cl"].result_count == 2


def test_a_typed_q_in_the_url_is_replaced_by_its_seal(ops_admin_client, rows):
    """An old bookmark or a hand-typed ?q=: the number is not echoed into the page's links and history."""
    answer = ops_admin_client.get(reverse("admin:sessions_app_smscontact_changelist"), {"q": SEED_PHONE, "p": "2"})
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert search_from_ref(query["q"][0]) == SEED_PHONE
    assert "p" not in query  # a new search starts at the first page


def test_a_forged_seal_searches_for_nothing_in_particular(ops_admin_client, rows):
    forged = search_ref("Jordan")[:-2] + "AA"
    answer = ops_admin_client.get(reverse("admin:sessions_app_customer_changelist"), {"q": forged}, follow=True)
    assert answer.status_code == 200
    assert answer.context["cl"].result_count == 0


def test_the_seal_is_not_a_session_link(rows):
    """Search seals and session references use different keys: one cannot stand for the other."""
    from lizzy.phone import InvalidPhoneRef, phone_from_ref

    with pytest.raises(InvalidPhoneRef):
        phone_from_ref(search_ref(SEED_PHONE))


def test_actions_still_post_to_the_changelist(ops_admin_client, rows, dynamodb):
    from sessions_app.models import HandoffRequest

    location = _search(ops_admin_client, "sessions_app_handoffrequest", SEED_PHONE)["Location"]
    mine = HandoffRequest.objects.get(phone=SEED_PHONE)
    answer = ops_admin_client.post(
        location, {"action": "close_handoffs", "_selected_action": [mine.pk], "index": "0"}, follow=True
    )
    assert answer.status_code == 200
    assert HandoffRequest.objects.filter(status="closed").count() == 1


def test_autocomplete_by_name_still_finds_customers(ops_admin_client, rows):
    answer = ops_admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "Jordan", "app_label": "sessions_app", "model_name": "servicerequest", "field_name": "customer"},
    )
    assert [item["id"] for item in answer.json()["results"]] != []


CACHE_URL = "admin:sessions_cache_entries"


def test_cached_entries_phone_filter_is_posted_then_sealed(ops_admin_client, dynamodb):
    page = ops_admin_client.get(reverse(CACHE_URL)).content.decode()
    form = re.search(r'<form([^>]*)>(?:(?!<form).)*?name="rq"', page, re.S)
    assert form, "no Redis filter form"
    assert 'method="post"' in form.group(1), form.group(1)

    answer = ops_admin_client.post(reverse(CACHE_URL) + "?dq=%3A1%3Apricing", {"rq": SEED_PHONE})
    assert answer.status_code == 303
    assert PHONE_DIGITS not in answer["Location"].replace("%2B", "+")
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert query["dq"] == [":1:pricing"]
    html = ops_admin_client.get(answer["Location"]).content.decode()
    assert f'value="{SEED_PHONE}"' in html
    assert _leaks(html, PHONE_DIGITS) == []


def test_cached_entries_typed_rq_is_replaced_by_its_seal(ops_admin_client, dynamodb):
    answer = ops_admin_client.get(reverse(CACHE_URL), {"rq": SEED_PHONE, "rc": "17"})
    assert answer.status_code == 302
    assert PHONE_DIGITS not in answer["Location"].replace("%2B", "+")
    assert "rc=" not in answer["Location"]  # a new filter starts from the first SCAN page
