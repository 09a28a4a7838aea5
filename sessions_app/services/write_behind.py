"""Write-behind (seed 001): sessions written to Redis reach DynamoDB through a periodic flush.

The dirty set is a Redis hash phone → write counter (plus a sorted set phone → time of the oldest
unflushed write, for the lag). A save marks its phone in the same Lua script that writes the value,
so an acknowledged write is either already in DynamoDB or still marked. The flush:

1. takes a Redis lock with a random token and an expiry (duplicated beats, django-celery-beat#337,
   run one flush at a time; a crashed flusher's lock expires; only the holder's token releases it);
2. reads a page of the dirty set, then each phone's counter and value in one MULTI (atomic; the
   session's ttl is derived from its lastActivity, as every write set the key's expiry);
3. while the fence is up (below), skips values DynamoDB already holds at the same or a newer version,
   so a flush never moves a session backwards;
4. writes the rest with BatchWriteItem, 25 per call (UnprocessedItems retried by lizzy.dynamodb);
5. clears each phone only if its counter is still the one read in step 2 (Lua compare-and-delete): a
   write made during the flush keeps its mark and goes out with the next flush.

The fence. DynamoDB can hold a newer version than a dirty Redis copy only if a session was written to
DynamoDB without going through Redis: a write-behind save (or delete, expire) that found Redis away and
went straight to DynamoDB. Such a write first raises the fence, one item in the cache table
(``LIZZY#write-behind-fence``) saying "check versions until T" (now + LIZZY_FLUSH_FENCE_SECONDS). Each
page of a flush reads that item (one GetItem per page) and only while the fence is up reads the page's
versions (BatchGetItem) before writing. Without the fence every page paid that read: on moto the flush ran
at 0.58× of a raw BatchWriteItem loop, 1.18× without it (docs/BENCHMARKS.md, benchmark 7). The guarantee
is the same as before: between the read and the write of a page, a direct write can still slip in (docs/
RELIABILITY.md, "Open defect"). If the fence cannot be read (table missing, DynamoDB erroring), the page is
checked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE, SK_DATA
from lizzy.dynamodb import (
    DynamoDBError,
    dynamodb_batch_get,
    dynamodb_batch_write,
    dynamodb_get_item,
    dynamodb_update_item,
)
from lizzy.errors import ServiceUnavailable
from lizzy.redis import (
    FLUSH_LAST_KEY,
    FLUSH_LOCK_KEY,
    json_loads,
    redis_dirty_backlog,
    redis_dirty_clear,
    redis_dirty_page,
    redis_dirty_snapshot,
    redis_get_json,
    redis_lock_acquire,
    redis_lock_release,
    redis_session_delete,
    redis_set_json,
)
from lizzy.tables import SESSIONS
from sessions_app.services.sessions import session_expiry

logger = logging.getLogger(__name__)

PAGE_SIZE = 500  # phones per HSCAN page and MULTI snapshot: bounded memory, few round trips
PAGES_IN_FLIGHT = 2
FENCE_KEY = {"PK": "LIZZY#write-behind-fence", "SK": SK_DATA}

_fence_raised_until = 0.0  # this process's last raise: one UpdateItem per half fence period, not per write
_fence_lock = threading.Lock()


def write_behind_fence_raise() -> None:
    """Before a write-behind store writes DynamoDB directly: make flushes check versions for a while.

    Raises ``DynamoDBError``/``ServiceUnavailable`` like any DynamoDB call; the caller's own write would
    not have succeeded either, and it must not go ahead unfenced.
    """
    global _fence_raised_until
    now = time.time()
    period = settings.LIZZY_FLUSH_FENCE_SECONDS
    with _fence_lock:
        if _fence_raised_until - now > period / 2:
            return
        until = int(now + period)
        dynamodb_update_item(
            table=CACHE_TABLE.name,
            key=FENCE_KEY,
            update="SET #until = :until, #ttl = :ttl",
            names={"#until": "until", "#ttl": "ttl"},
            values={":until": until, ":ttl": until + 86400},
            return_values="NONE",
        )
        _fence_raised_until = until
    metrics.FLUSH_FENCE_RAISED.inc()
    logger.warning("write-behind fence raised until %s: a session was written to DynamoDB without Redis", until)


def write_behind_fenced() -> bool:
    """True while flushes must check DynamoDB's versions (or when the fence cannot be read)."""
    try:
        item = dynamodb_get_item(table=CACHE_TABLE.name, key=FENCE_KEY, consistent=True)
    except (DynamoDBError, ServiceUnavailable) as exc:
        logger.warning("write-behind fence unreadable (%s): checking versions", getattr(exc, "code", exc))
        return True
    return item is not None and int(item.get("until", 0)) > time.time()


def _reset_fence_memory() -> None:
    """Tests: forget this process's last raise."""
    global _fence_raised_until
    _fence_raised_until = 0.0


@dataclass
class Backlog:
    size: int
    oldest_age_seconds: float | None


@dataclass
class FlushResult:
    status: str  # flushed | locked
    written: int = 0
    cleared: int = 0
    stale_skipped: int = 0
    checked: int = 0  # items whose DynamoDB version was read first (fence up)
    expired: int = 0
    batches: int = 0
    seconds: float = 0.0


def flush_backlog() -> Backlog:
    """How many sessions wait for DynamoDB and how old the oldest unflushed write is (also as gauges)."""
    size, oldest = redis_dirty_backlog()
    age = max(0.0, time.time() - oldest) if oldest is not None else None
    metrics.FLUSH_BACKLOG.set(size)
    metrics.FLUSH_OLDEST_AGE.set(age or 0)
    return Backlog(size=size, oldest_age_seconds=age)


def flush_last() -> dict | None:
    """Summary of the last completed flush (any process), for the admin."""
    return redis_get_json(name=FLUSH_LAST_KEY)


def sessions_flush(*, max_items: int | None = None) -> FlushResult:
    """Flush dirty sessions to DynamoDB once; returns status ``locked`` if another flush is running."""
    token = redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=settings.LIZZY_FLUSH_LOCK_SECONDS)
    if token is None:
        metrics.FLUSH_RUNS.labels("locked").inc()
        return FlushResult(status="locked")
    started = time.perf_counter()
    result = FlushResult(status="flushed")
    limit = max_items or settings.LIZZY_FLUSH_MAX_ITEMS
    try:
        # Two pages in flight: one page's staleness check (BatchGetItem) overlaps the other's writes.
        with ThreadPoolExecutor(max_workers=PAGES_IN_FLIGHT, thread_name_prefix="flush") as pool:
            pending: deque[Future[FlushResult]] = deque()
            submitted: set[str] = set()
            cursor, seen = 0, 0
            while True:
                cursor, entries = redis_dirty_page(cursor=cursor, count=PAGE_SIZE)
                # HSCAN may return a field twice; with two pages in flight both would write it.
                entries = {phone: counter for phone, counter in entries.items() if phone not in submitted}
                submitted.update(entries)
                if entries:
                    pending.append(pool.submit(_flush_page_result, list(entries)))
                    seen += len(entries)
                while pending and (len(pending) >= PAGES_IN_FLIGHT or cursor == 0 or seen >= limit):
                    _merge(result, pending.popleft().result())
                if cursor == 0 or seen >= limit:
                    break
    except Exception:
        metrics.FLUSH_RUNS.labels("error").inc()
        raise
    finally:
        redis_lock_release(name=FLUSH_LOCK_KEY, token=token)
    result.seconds = round(time.perf_counter() - started, 4)
    metrics.FLUSH_RUNS.labels("flushed").inc()
    metrics.FLUSH_ITEMS.inc(result.written)
    metrics.FLUSH_SECONDS.observe(result.seconds)
    redis_set_json(name=FLUSH_LAST_KEY, value={**asdict(result), "finishedAt": timezone.now().isoformat()})
    flush_backlog()
    return result


def _merge(total: FlushResult, page: FlushResult) -> None:
    for name in ("written", "cleared", "stale_skipped", "checked", "expired", "batches"):
        setattr(total, name, getattr(total, name) + getattr(page, name))


def _flush_page_result(phones: list[str]) -> FlushResult:
    result = FlushResult(status="flushed")
    _flush_page(phones, result)
    return result


def _flush_page(phones: list[str], result: FlushResult) -> None:
    items: dict[str, dict] = {}
    counters: dict[str, str] = {}
    for phone, (counter, value) in zip(phones, redis_dirty_snapshot(phones=phones), strict=True):
        if counter is None:
            continue  # cleared since the page was read (deleted, or another flush)
        counters[phone] = counter
        if value is None:
            result.expired += 1  # the session expired in Redis: nothing left to write
            continue
        document = json_loads(value)
        document["ttl"] = session_expiry(document.get("lastActivity")) or (
            int(time.time()) + settings.LIZZY_SESSION_TTL_SECONDS
        )
        items[phone] = document
    if items and write_behind_fenced():
        result.checked += len(items)
        durable = dynamodb_batch_get(
            table=SESSIONS.name,
            keys=[{"phone": phone} for phone in items],
            consistent=True,
            attributes=("phone", "version"),  # all the staleness check needs (docs/BENCHMARKS.md, benchmark 7)
        )
        for existing in durable:
            phone = existing["phone"]
            seen = int(items[phone].get("version", 0))
            if int(existing.get("version", 0)) >= seen:
                # DynamoDB got this version (or a later one) another way: a write made while Redis was
                # away, whose content may differ even at an equal version. DynamoDB is the store of
                # record: drop the hot copy, but only if it is still the one read here (a write made
                # since is newer and keeps its key and mark).
                result.stale_skipped += 1
                redis_session_delete(phone=phone, expected_version=seen)
                del items[phone]
    if items:
        written = dynamodb_batch_write(
            table=SESSIONS.name,
            items=list(items.values()),
            key_names=("phone",),
            concurrency=settings.LIZZY_FLUSH_CONCURRENCY,
        )
        result.written += written.written
        result.batches += written.calls
    result.cleared += redis_dirty_clear(counters=counters)
