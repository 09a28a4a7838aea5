import datetime as dt
from decimal import Decimal

import pytest

from lizzy import cost
from lizzy.cost import (
    CURRENT_PRICES,
    SEED_000_PRICES,
    break_even_sessions,
    capacity_flush,
    capacity_summary,
    cost_monthly,
    project_month,
)
from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.models import CacheNodePrice, CapacityUsage, DynamoDBPricing
from lizzy.tables import SESSIONS


@pytest.fixture
def fresh_capacity(db):
    """Counters of earlier tests in this process flushed away, and no rows: each test sees only its own calls."""
    capacity_flush()
    CapacityUsage.objects.all().delete()


def test_seed_000_worked_example_at_the_older_prices():
    # given seed 000's month: 3,000 writes, 2,000 reads, 0.5 GB stored, $1.25 / $0.25 / $0.25
    result = cost_monthly(writes=3000, reads=2000, storage_gb=Decimal("0.5"), prices=SEED_000_PRICES)

    # then the seed's lines: $0.004 (0.00375) + $0.0005 + $0.125 ≈ $0.13
    assert result.writes == Decimal("0.00375")
    assert result.reads == Decimal("0.0005")
    assert result.storage == Decimal("0.125")
    assert round(result.total, 2) == Decimal("0.13")


def test_current_prices_halve_the_request_cost_of_the_seed_example():
    result = cost_monthly(writes=3000, reads=2000, storage_gb=Decimal("0.5"), prices=CURRENT_PRICES)
    assert result.writes == Decimal("0.001875")
    assert result.reads == Decimal("0.00025")
    assert result.storage == Decimal("0.125")


def test_break_even_matches_seed_000s_about_200000_sessions_against_a_25_dollar_node():
    sessions = break_even_sessions(node_monthly_usd=Decimal(25), prices=SEED_000_PRICES)
    # $25 / ($0.12925 per 1,000 sessions) = 193,424: the seed rounds this to "~200,000".
    assert sessions == 193_424
    assert 150_000 < sessions < 250_000


def test_ten_thousand_sessions_cost_about_1_30_as_seed_000_says():
    per_session = cost.cost_per_session(prices=SEED_000_PRICES)
    assert round(per_session * 10_000, 2) == Decimal("1.29")


def test_project_month_extrapolates_month_to_date_units_linearly():
    # given 100 units in the first 10 days of a 30-day month
    now = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)
    assert project_month(units_so_far=100, now=now) == pytest.approx(300)
    # and the first hours of a month count as one day, not a near-zero divisor
    early = dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC)
    assert project_month(units_so_far=10, now=early) == pytest.approx(300)


@pytest.mark.django_db
def test_default_prices_and_nodes_come_from_the_seeds():
    active = DynamoDBPricing.objects.get(is_active=True)
    assert (active.write_per_million, active.read_per_million, active.storage_per_gb_month) == (
        Decimal("0.625"),
        Decimal("0.125"),
        Decimal("0.25"),
    )
    older = DynamoDBPricing.objects.get(is_active=False)
    assert (older.write_per_million, older.read_per_million) == (Decimal("1.25"), Decimal("0.25"))
    assert CacheNodePrice.objects.get(node_type="cache.t4g.small").monthly_usd == Decimal("24")
    assert CacheNodePrice.objects.get(replaced=True).monthly_usd == Decimal("25")


@pytest.mark.django_db
def test_flush_persists_consumed_capacity_per_table_and_day(dynamodb, fresh_capacity):
    dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550100", "ttl": 1})
    dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"})

    assert capacity_flush() == 1
    row = CapacityUsage.objects.get(table=SESSIONS.name)
    assert row.write_units == pytest.approx(1.0)
    assert row.read_units == pytest.approx(0.5)  # eventually consistent read of a small item
    assert row.calls == 2

    # a second flush with new calls adds to the same row
    dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"})
    capacity_flush()
    row.refresh_from_db()
    assert row.read_units == pytest.approx(1.0)
    assert CapacityUsage.objects.count() == 1


@pytest.mark.django_db
def test_units_survive_a_failed_flush_and_go_out_with_the_next(dynamodb, fresh_capacity, monkeypatch):
    dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550100", "ttl": 1})

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patch:
        patch.setattr(CapacityUsage.objects, "get_or_create", broken)
        with pytest.raises(RuntimeError):
            capacity_flush()
    assert not CapacityUsage.objects.exists()

    capacity_flush()
    assert CapacityUsage.objects.get(table=SESSIONS.name).write_units == pytest.approx(1.0)


@pytest.mark.django_db
def test_summary_prices_the_projection_with_the_active_row():
    now = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # 15 days elapsed of 30
    CapacityUsage.objects.create(table="t", day=now.date(), read_units=2_000_000, write_units=1_000_000)
    summary = capacity_summary(storage_gb=1.0, now=now)
    assert summary.write_units_today == 1_000_000
    assert summary.projected_writes == pytest.approx(2_000_000)
    # 2 M writes × $0.625 + 4 M reads × $0.125 + 1 GB × $0.25
    assert summary.projected.total == pytest.approx(Decimal("1.25") + Decimal("0.5") + Decimal("0.25"))


@pytest.mark.django_db
def test_beat_schedules_the_flush_task_and_the_task_persists_capacity(dynamodb, fresh_capacity, settings):
    from lizzy.celery import app
    from lizzy.tasks import capacity_flush_task

    entry = settings.CELERY_BEAT_SCHEDULE["lizzy-capacity-flush"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550100", "ttl": 1})

    capacity_flush_task.delay()

    assert CapacityUsage.objects.get(table=SESSIONS.name).write_units == pytest.approx(1.0)
