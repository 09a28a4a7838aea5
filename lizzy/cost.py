"""DynamoDB cost: consumed capacity persisted per table and day, projections, and seed 000's comparison.

Consumed capacity is counted per process by ``lizzy.dynamodb`` (``ReturnConsumedCapacity``). Every
process flushes its own counters into ``CapacityUsage`` (the database: one ledger shared by all
processes): from any DynamoDB call once ``LIZZY_CAPACITY_FLUSH_SECONDS`` have passed since its last flush
(web requests, Celery children, ``migrate_to_dynamodb`` on the command line), when the process exits
(``atexit``, and Celery's ``worker_process_shutdown`` for pool children), after a request or a task, and
the dashboard on demand. Units taken from the counters but not yet written stay pending in this process
and go out with the next flush, so a database hiccup loses nothing. A negative interval turns the
automatic flushes off (the test settings: tests flush explicitly).
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Sum
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import consumed_capacity
from lizzy.models import CapacityUsage, DynamoDBPricing

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
# Seed 000's per-session assumptions: 1,000 sessions make 3,000 writes, 2,000 reads and 0.5 GB stored.
SEED_SESSIONS = 1000
SEED_WRITES_PER_SESSION = Decimal(3)
SEED_READS_PER_SESSION = Decimal(2)
SEED_STORAGE_GB_PER_SESSION = Decimal("0.5") / SEED_SESSIONS

_pending_lock = threading.Lock()
_pending: dict[tuple[str, str], dict[str, float]] = {}  # (table, ISO day) -> units not yet persisted
_last_flush = 0.0


@dataclass(frozen=True)
class Prices:
    write_per_million: Decimal
    read_per_million: Decimal
    storage_per_gb_month: Decimal


CURRENT_PRICES = Prices(Decimal("0.625"), Decimal("0.125"), Decimal("0.25"))  # us-east-1 since Nov 2024
SEED_000_PRICES = Prices(Decimal("1.25"), Decimal("0.25"), Decimal("0.25"))  # seed 000, Cost Comparison


@dataclass(frozen=True)
class MonthlyCost:
    writes: Decimal
    reads: Decimal
    storage: Decimal

    @property
    def total(self) -> Decimal:
        return self.writes + self.reads + self.storage


def cost_monthly(
    *, writes: Decimal | float, reads: Decimal | float, storage_gb: Decimal | float, prices: Prices
) -> MonthlyCost:
    """Seed 000's formula: request units × price per million, plus GB stored × price per GB-month."""
    return MonthlyCost(
        writes=Decimal(str(writes)) * prices.write_per_million / MILLION,
        reads=Decimal(str(reads)) * prices.read_per_million / MILLION,
        storage=Decimal(str(storage_gb)) * prices.storage_per_gb_month,
    )


def cost_per_session(*, prices: Prices) -> Decimal:
    """What one session costs under seed 000's assumptions (storage scales with sessions, as the seed's
    "10,000 sessions/month: ~$1.30" does)."""
    return cost_monthly(
        writes=SEED_WRITES_PER_SESSION,
        reads=SEED_READS_PER_SESSION,
        storage_gb=SEED_STORAGE_GB_PER_SESSION,
        prices=prices,
    ).total


def break_even_sessions(*, node_monthly_usd: Decimal, prices: Prices) -> int:
    """Sessions per month at which DynamoDB costs as much as the Redis node (seed 000: ~200,000)."""
    per_session = cost_per_session(prices=prices)
    return int((Decimal(node_monthly_usd) / per_session).to_integral_value(rounding=ROUND_HALF_UP))


def project_month(*, units_so_far: float, now: dt.datetime) -> float:
    """Month-to-date units extrapolated linearly to the whole calendar month (at least one day elapsed)."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elapsed_days = max((now - start).total_seconds() / 86400, 1.0)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    return units_so_far / elapsed_days * days_in_month


# --- Persisting consumed capacity -------------------------------------------------------------------


def capacity_flush(*, now: dt.datetime | None = None) -> int:
    """Move this process's consumed-capacity counters into ``CapacityUsage``; returns rows touched."""
    global _last_flush
    now = now or timezone.now()
    day = now.date().isoformat()
    with _pending_lock:
        for (table, _operation), bucket in consumed_capacity(reset=True).items():
            entry = _pending.setdefault((table, day), {"read": 0.0, "write": 0.0, "calls": 0})
            entry["read"] += bucket["read"]
            entry["write"] += bucket["write"]
            entry["calls"] += int(bucket["calls"])
        batch = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
    try:
        with transaction.atomic():
            for (table, day_text), entry in batch.items():
                row, _created = CapacityUsage.objects.get_or_create(
                    table=table, day=dt.date.fromisoformat(day_text), defaults={"first_units_at": now}
                )
                CapacityUsage.objects.filter(pk=row.pk).update(
                    read_units=F("read_units") + entry["read"],
                    write_units=F("write_units") + entry["write"],
                    calls=F("calls") + entry["calls"],
                )
    except Exception:
        metrics.CAPACITY_FLUSH_FAILURES.inc()
        with _pending_lock:
            for key, entry in batch.items():
                kept = _pending.setdefault(key, {"read": 0.0, "write": 0.0, "calls": 0})
                for name in ("read", "write", "calls"):
                    kept[name] += entry[name]
        raise
    return len(batch)


def capacity_flush_interval() -> float:
    """Seconds between a process's automatic flushes; negative: no automatic flush."""
    return float(settings.LIZZY_CAPACITY_FLUSH_SECONDS)


_flushing = threading.local()


def capacity_flush_if_due() -> None:
    """Cheap to call after every DynamoDB call, request or task: flushes at most once per interval."""
    interval = capacity_flush_interval()
    if interval < 0 or time.monotonic() - _last_flush < interval or getattr(_flushing, "active", False):
        return
    _flushing.active = True  # a flush inside a flush (its own database write) does nothing
    try:
        capacity_flush()
    except Exception:
        logger.warning("could not persist consumed capacity; kept for the next flush", exc_info=True)
    finally:
        _flushing.active = False


def capacity_flush_at_exit(**_: object) -> None:
    """The process is ending (``atexit``, Celery ``worker_process_shutdown``): persist what it counted."""
    if capacity_flush_interval() < 0:
        return
    with _pending_lock:
        nothing = not _pending and not consumed_capacity()
    if nothing:
        return
    try:
        capacity_flush()
    except Exception:
        logger.warning("could not persist consumed capacity at exit; these units are not in the ledger", exc_info=True)


# --- What the dashboard and the cost page show -----------------------------------------------------


@dataclass(frozen=True)
class CapacitySummary:
    day: dt.date
    read_units_today: float
    write_units_today: float
    read_units_month: float
    write_units_month: float
    projected_reads: float
    projected_writes: float
    storage_gb: float
    projected: MonthlyCost
    prices_name: str
    first_day: dt.date | None = None  # the month's first day with any units in the ledger
    data_hours: float = 0.0  # how much of the month the ledger covers, up to now

    @property
    def projection_note(self) -> str:
        """Say how little data a projection rests on (a first-day projection is a guess, not a forecast)."""
        if self.first_day is None:
            return NOTE_NO_DATA
        if self.data_hours < 24:
            return NOTE_LESS_THAN_A_DAY.format(hours=max(self.data_hours, 0.0))
        if self.first_day.day != 1:
            return NOTE_PARTIAL_MONTH.format(day=self.first_day.isoformat())
        return ""


NOTE_NO_DATA = "No consumed capacity recorded this month yet: the projection is 0 until some is."
NOTE_LESS_THAN_A_DAY = (
    "Projected from less than a day of data ({hours:.1f} h since the ledger's first units this month): "
    "a rough guess; it settles once a few days are in."
)
NOTE_PARTIAL_MONTH = "The ledger starts on {day} this month; the projection counts the days before it as unused."


def active_prices() -> tuple[str, Prices]:
    row = DynamoDBPricing.objects.filter(is_active=True).order_by("name").first()
    if row is None:
        return "default on-demand list price", CURRENT_PRICES
    return row.name, Prices(row.write_per_million, row.read_per_million, row.storage_per_gb_month)


def capacity_summary(*, storage_gb: float, now: dt.datetime | None = None) -> CapacitySummary:
    """Today's and this month's consumed units (all tables) and the month's projected cost."""
    now = now or timezone.now()
    today = now.date()
    month = CapacityUsage.objects.filter(day__gte=today.replace(day=1), day__lte=today)
    totals = month.aggregate(read=Sum("read_units"), write=Sum("write_units"))
    today_totals = month.filter(day=today).aggregate(read=Sum("read_units"), write=Sum("write_units"))
    reads_month, writes_month = totals["read"] or 0.0, totals["write"] or 0.0
    projected_reads = project_month(units_so_far=reads_month, now=now)
    projected_writes = project_month(units_so_far=writes_month, now=now)
    name, prices = active_prices()
    first_day = month.order_by("day").values_list("day", flat=True).first()
    data_hours = 0.0
    if first_day is not None:
        # From the ledger's first units this month; a first-day row written before that time was kept
        # counts from its midnight.
        first_units_at = month.filter(day=first_day, first_units_at__isnull=False).aggregate(at=Min("first_units_at"))[
            "at"
        ]
        start = (
            dt.datetime.combine(first_day, dt.time.min, tzinfo=dt.UTC)
            if first_units_at is None or month.filter(day=first_day, first_units_at__isnull=True).exists()
            else first_units_at
        )
        data_hours = (now - start).total_seconds() / 3600
    return CapacitySummary(
        day=today,
        read_units_today=today_totals["read"] or 0.0,
        write_units_today=today_totals["write"] or 0.0,
        read_units_month=reads_month,
        write_units_month=writes_month,
        projected_reads=projected_reads,
        projected_writes=projected_writes,
        storage_gb=storage_gb,
        projected=cost_monthly(writes=projected_writes, reads=projected_reads, storage_gb=storage_gb, prices=prices),
        prices_name=name,
        first_day=first_day,
        data_hours=data_hours,
    )
