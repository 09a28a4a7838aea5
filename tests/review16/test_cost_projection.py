"""Adversarial review of issue 16: "a monthly projection from less than a day of data needs to say so".

The ledger keeps one row per table and UTC day, no time: ``data_hours`` is counted from midnight of the first
day, not from the first units, so the note is wrong whenever the first units came after midnight."""

from __future__ import annotations

import datetime as dt

import pytest

from lizzy.cost import capacity_flush, capacity_summary
from lizzy.dynamodb.capacity import _record_capacity, consumed_capacity

pytestmark = pytest.mark.django_db


def _first_units_at(when: dt.datetime) -> None:
    consumed_capacity(reset=True)
    _record_capacity("PutItem", {"TableName": "Sessions", "WriteCapacityUnits": 100.0})
    capacity_flush(now=when)


def test_one_hour_of_data_across_midnight_is_said_to_be_less_than_a_day():
    _first_units_at(dt.datetime(2026, 11, 14, 23, 30, tzinfo=dt.UTC))
    summary = capacity_summary(storage_gb=0.0, now=dt.datetime(2026, 11, 15, 0, 30, tzinfo=dt.UTC))
    assert summary.write_units_month == 100.0
    assert "less than a day" in summary.projection_note, summary.projection_note


def test_the_note_counts_hours_from_the_first_units_not_from_midnight():
    _first_units_at(dt.datetime(2026, 11, 1, 14, 0, tzinfo=dt.UTC))
    summary = capacity_summary(storage_gb=0.0, now=dt.datetime(2026, 11, 1, 15, 0, tzinfo=dt.UTC))
    # one hour of data; the note says "15.0 h since the ledger's first units this month"
    assert "(1.0 h since" in summary.projection_note, summary.projection_note
