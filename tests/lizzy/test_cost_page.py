"""The cost page without internal jargon, and projections that say how little data they rest on (issue 16)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from lizzy.cost import NOTE_NO_DATA, capacity_summary
from lizzy.models import CapacityUsage

pytestmark = pytest.mark.django_db
JARGON = re.compile(r"seed 0\d\d|\(replaced\)", re.IGNORECASE)


@pytest.fixture
def no_usage(db):
    CapacityUsage.objects.all().delete()


def test_the_cost_page_has_no_internal_names(dynamodb, ops_admin_client, no_usage):
    html = ops_admin_client.get("/admin/ops/cost/").content.decode()
    text = re.sub(r"<[^>]+>", " ", html)
    assert not JARGON.search(text), JARGON.search(text).group(0)
    assert "Older list price (before the November 2024 cut)" in text
    assert "recommended size" in text
    assert "sessions ran on it before DynamoDB" in text
    assert "Example month: 1,000 sessions" in text


def test_a_projection_from_less_than_a_day_says_so():
    now = dt.datetime(2026, 11, 16, 6, 30, tzinfo=dt.UTC)
    CapacityUsage.objects.create(table="t", day=now.date(), read_units=10, write_units=75_000)
    note = capacity_summary(storage_gb=0.0, now=now).projection_note
    assert note.startswith("Projected from less than a day of data (6.5 h")


def test_a_ledger_that_starts_mid_month_says_so_and_a_full_month_says_nothing():
    now = dt.datetime(2026, 11, 16, 12, tzinfo=dt.UTC)
    CapacityUsage.objects.create(table="t", day=dt.date(2026, 11, 10), write_units=5)
    assert "starts on 2026-11-10" in capacity_summary(storage_gb=0.0, now=now).projection_note
    CapacityUsage.objects.create(table="t", day=dt.date(2026, 11, 1), write_units=5)
    assert capacity_summary(storage_gb=0.0, now=now).projection_note == ""


def test_no_data_says_so(no_usage):
    assert capacity_summary(storage_gb=0.0).projection_note == NOTE_NO_DATA


def test_the_dashboard_and_cost_page_show_the_note(dynamodb, ops_admin_client, no_usage):
    CapacityUsage.objects.create(table="t", day=dt.datetime.now(dt.UTC).date(), write_units=7)
    dashboard = ops_admin_client.get("/admin/").content.decode()
    cost = ops_admin_client.get("/admin/ops/cost/").content.decode()
    for html in (dashboard, cost):
        assert "Projected from less than a day of data" in html


def test_a_local_endpoint_storage_is_not_shown_as_zero_gb(dynamodb, ops_admin_client, settings):
    settings.AWS_ENDPOINT_URL_DYNAMODB = "http://127.0.0.1:8001"  # what make run points at (moto says 0 bytes)
    html = ops_admin_client.get("/admin/ops/cost/").content.decode()
    assert "not reported by the local endpoint" in html
    assert "0.0000 GB" not in html
