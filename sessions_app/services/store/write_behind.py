"""``cached_write_behind`` (seed 001): the store, and the flush that takes its writes to DynamoDB.

The store is ``cached`` (cache-aside reads, the same breaker) whose saves are a Lua CAS in Redis that also
marks the phone dirty, and whose deletes and expires are dirty tombstones; while Redis is away it writes
through, as ``cached`` does. The flusher copies the dirty sessions to DynamoDB, conditionally.

The dirty set is a Redis hash phone → write counter (plus a sorted set phone → time of the oldest
unflushed write, for the lag, and a hash phone → base: the DynamoDB version the Redis lineage descends
from). A save marks its phone in the same Lua script that writes the value, so an acknowledged write is
either already in DynamoDB or still marked; a delete or expire leaves a dirty tombstone. The flush:

1. takes a Redis lock with a random token and an expiry (duplicated beats, django-celery-beat#337, run
   one flush at a time; a crashed flusher's lock expires; only the holder's token releases it) and a
   fencing number (microseconds, increasing, independent of Redis);
2. renews the lock before each page, and stops (``lock_lost``) once it is no longer the holder;
3. reads a page of the dirty set, then each phone's counter, value and base in one MULTI;
4. writes each session with its own conditional PutItem (BatchWriteItem takes no condition): DynamoDB
   must still hold the base, and no later flusher may have written the item (``flushedBy``). A failed
   condition is either a later flusher (stop) or a fork: DynamoDB was written while Redis was away from
   a writer, and DynamoDB wins (the Redis copy, mark and base are dropped, counted);
5. moves each written phone's base to the version written and clears its mark only if its counter is
   still the one read in step 3 (a write made during the flush keeps its mark and goes out next time).

Before step 3 each run applies the shared bypass registry (``bypass.py``: the phones written to DynamoDB
while Redis was away, with the versions) and removes the entries it applied, so a process that never saw
Redis fail stops serving such a stale copy after the next flush run. The fence item
(``LIZZY#write-behind-fence``) records that a write bypassed Redis recently; the admin shows it. The
flush's safety no longer depends on it: every write is conditional (docs/SESSION_STORE.md, "Write-behind
and the loss window").
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE, SK_DATA
from lizzy.dynamodb import (
    ConditionFailed,
    DynamoDBError,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_update_item,
)
from lizzy.errors import ServiceUnavailable
from lizzy.phone import mask_phone
from lizzy.redis import (
    FLUSH_LAST_KEY,
    FLUSH_LOCK_KEY,
    RedisUnavailable,
    is_tombstone,
    json_loads,
    redis_dirty_backlog,
    redis_dirty_clear,
    redis_dirty_flushed,
    redis_dirty_page,
    redis_dirty_snapshot,
    redis_get_json,
    redis_lock_acquire,
    redis_lock_holds,
    redis_lock_release,
    redis_lock_renew,
    redis_session_drop,
    redis_session_tombstone,
    redis_set_json,
)
from lizzy.tables import SESSIONS
from sessions_app.models import StoreMode
from sessions_app.services.store.base import (
    ERR_CONFLICT,
    FLUSHED_BY,
    Session,
    SessionConflict,
    session_conflict,
    session_expiry,
    session_stamped,
)
from sessions_app.services.store.bypass import bypass_apply, bypass_registry_read, bypass_unregister
from sessions_app.services.store.cached import ENDED_ALREADY, CachedSessionStore
from sessions_app.services.store.timing import timed

logger = logging.getLogger(__name__)

PAGE_SIZE = 500  # phones per HSCAN page and MULTI snapshot: bounded memory, few round trips
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


# --- The store ------------------------------------------------------------------------------------


class WriteBehindSessionStore(CachedSessionStore):
    mode = StoreMode.CACHED_WRITE_BEHIND
    refuses_unrecovered = True

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        stored = self._save_behind(session, expected_version)
        if stored is not None:
            return stored
        metrics.SESSION_WRITE_THROUGH_DEGRADED.inc()
        write_behind_fence_raise()  # about to write DynamoDB without Redis: noted for the admin
        return self._save_through(session, expected_version)

    def _save_behind(self, session: Session, expected_version: int | None) -> Session | None:
        """The stored session, or None when Redis is away (the caller writes through instead)."""
        if expected_version is not None:
            # The usual turn: its version is in the hot tier, and the CAS alone settles it (one round trip
            # fewer than reading first: docs/BENCHMARKS.md, calls per turn). The CAS reports an absent key
            # as -1; only then does DynamoDB have to say whether the session exists.
            stored = session_stamped(session=session, expected_version=expected_version)
            answered, outcome = self._try_redis(
                lambda: self.redis.cas(stored, expected_version=expected_version, mark_dirty=True),
                before_write=True,
            )
            if not answered:
                return None
            written, current = outcome
            if written:
                return stored
            if current != -1:
                raise session_conflict(session, expected_version)
        # A create (a live session anywhere must refuse it), or the session is not in the hot tier.
        answered, peeked = self._try_redis(lambda: self.redis.peek(session.phone), before_write=True)
        if not answered:
            return None
        cached, floor = peeked
        if cached is None and not floor:
            # Not in the hot tier: DynamoDB knows whether a session exists and at which version.
            with timed("dynamodb", "get"):
                durable, floor = self.dynamodb.load_with_floor(session.phone)
            if durable is not None:
                self._fill(durable)
            elif expected_version is not None:
                raise session_conflict(session, expected_version)
        answered, stored = self._try_redis(
            lambda: self.redis.save(session, expected_version=expected_version, mark_dirty=True, version_floor=floor),
            before_write=True,
        )
        return stored if answered else None

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        """Redis may hold newer, unflushed versions, so Redis checks the version and keeps a dirty tombstone
        the flusher applies to DynamoDB (conditionally); a session not in Redis, or Redis away, is retired
        in DynamoDB as ``cached`` does."""
        answered, result = self._try_redis(
            lambda: redis_session_tombstone(phone=phone, expected_version=expected_version, kind=kind, mark_dirty=True),
            before_write=True,
        )
        if answered and result is not None and result < 0:
            raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
        if answered and result == 1:
            return True
        if answered and result == ENDED_ALREADY:
            # Ended in Redis already (an unflushed tombstone; a flushed one answers 0, and DynamoDB decides, for a
            # lifetime may have been written through to it since): DynamoDB's live copy is the stale one the
            # flush replaces. Ending it there would acknowledge an end of nothing, and its Redis step would then
            # meet whatever lifetime started since.
            return False
        if not answered:
            write_behind_fence_raise()
        return self._retire_through(phone, expected_version, kind, bypassing=not answered)


# --- The flush ------------------------------------------------------------------------------------


@dataclass
class Backlog:
    size: int
    oldest_age_seconds: float | None


@dataclass
class FlushResult:
    status: str  # flushed | locked | lock_lost
    written: int = 0
    cleared: int = 0
    stale_skipped: int = 0
    checked: int = 0  # items flushed while the fence item was up (a write had bypassed Redis recently)
    expired: int = 0
    batches: int = 0  # conditional PutItem calls
    failed: int = 0  # writes DynamoDB refused (throttled after retries, unreachable): still dirty
    bypass_read: bool = False  # the shared bypass registry was read and applied by this run
    bypass_dropped: int = 0  # Redis copies older than a write made without Redis, dropped by this run
    bypass_removed: int = 0  # registry entries this run applied and removed
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


_last_fence = 0
_last_fence_lock = threading.Lock()


def _fencing_number() -> int:
    """Microseconds since the epoch, strictly increasing in this process.

    A later lock holder took the lock after the earlier one's expired or was released, so its number is
    larger; it survives a Redis restart (a Redis counter would start again from 1 and fence out every
    flush after it). Clocks skewed between hosts by more than the lock's gaps can make a newer flusher
    stop as if fenced out ("lock_lost") until the skew has passed: it never writes anything older.
    """
    global _last_fence
    with _last_fence_lock:
        _last_fence = max(_last_fence + 1, time.time_ns() // 1000)
        return _last_fence


class FlushLockLost(Exception):
    """The flush lock expired or passed to another flusher: this flush must not write any more."""


# Modes where Redis is the store of record: a Redis copy is never dropped there for DynamoDB's sake (after
# a Redis loss in redis_only the versions restart below DynamoDB's). Their revalidations move Redis instead.
REDIS_OF_RECORD_MODES = (StoreMode.REDIS_ONLY, StoreMode.PARALLEL)


def _flush_bypass_registry(result: FlushResult, *, mode: str | None) -> None:
    """Apply the shared bypass registry (one Query), then remove each entry applied unless a newer one
    replaced it meanwhile (or Redis had no copy of the phone: kept until it expires, bypass.py). In a mode
    where Redis is the store of record, the entries are removed unapplied. DynamoDB unreadable: nothing
    applied, the next run tries again (raises RedisUnavailable)."""
    try:
        entries = bypass_registry_read()
    except (DynamoDBError, ServiceUnavailable) as exc:
        metrics.SESSION_BYPASS_REGISTRY.labels("unreadable").inc()
        logger.warning("write-behind flush: bypass registry unreadable (%s)", getattr(exc, "code", exc))
        return
    absent: set[str] = set()
    if mode not in REDIS_OF_RECORD_MODES:  # expired entries too: a dirty tombstone outlives its entry
        written = {entry.phone: entry.version for entry in entries}
        result.bypass_dropped, absent = bypass_apply(written, where="registry")
    result.bypass_read = True
    now = time.time()
    for entry in entries:
        if entry.phone in absent and entry.expires_at > now:
            continue  # no copy yet: a late fill of the older copy may land; the next run drops it
        try:
            if bypass_unregister(entry=entry):
                result.bypass_removed += 1
        except (DynamoDBError, ServiceUnavailable) as exc:
            logger.warning("write-behind flush: bypass entry not removed (%s)", getattr(exc, "code", exc))
    metrics.SESSION_BYPASS_REGISTRY.labels("removed").inc(result.bypass_removed)


def sessions_flush(*, max_items: int | None = None, mode: str | None = None) -> FlushResult:
    """Flush dirty sessions to DynamoDB once; status ``locked`` if another flush is running, ``lock_lost``
    if this one lost its lock midway (it stopped writing; the next flush goes on). ``mode``: the store
    mode the caller follows (the registry is not applied where Redis is the store of record)."""
    lock_seconds = settings.LIZZY_FLUSH_LOCK_SECONDS
    token = redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=lock_seconds)
    if token is None:
        metrics.FLUSH_RUNS.labels("locked").inc()
        return FlushResult(status="locked")
    fence = _fencing_number()  # taken after the lock: a later holder has a larger one
    started = time.perf_counter()
    result = FlushResult(status="flushed")
    limit = max_items or settings.LIZZY_FLUSH_MAX_ITEMS
    flush = _Flush(token=token, fence=fence, lock_seconds=lock_seconds, reported=write_behind_fenced())
    try:
        _flush_bypass_registry(result, mode=mode)
        cursor, seen = 0, 0
        submitted: set[str] = set()
        in_flight: _Page | None = None
        while True:
            flush.renew()
            cursor, entries = redis_dirty_page(cursor=cursor, count=PAGE_SIZE)
            # HSCAN may return a field twice.
            phones = [phone for phone in entries if phone not in submitted]
            submitted.update(phones)
            # Two pages in flight: this page's writes start before the last page's bookkeeping, so the
            # writers never wait for the Redis round trips between pages.
            started_page = flush.start(phones) if phones else None
            seen += len(phones)
            if in_flight is not None:
                _merge(result, flush.finish(in_flight))
            in_flight = started_page
            if cursor == 0 or seen >= limit:
                break
        if in_flight is not None:
            _merge(result, flush.finish(in_flight))
    except FlushLockLost:
        metrics.FLUSH_RUNS.labels("lock_lost").inc()
        logger.warning("write-behind flush lost its lock midway; it stopped writing")
        result.status = "lock_lost"
    except Exception:
        metrics.FLUSH_RUNS.labels("error").inc()
        raise
    finally:
        flush.close()
        redis_lock_release(name=FLUSH_LOCK_KEY, token=token)
    result.seconds = round(time.perf_counter() - started, 4)
    if result.status == "flushed":
        metrics.FLUSH_RUNS.labels("flushed").inc()
    metrics.FLUSH_ITEMS.inc(result.written)
    metrics.FLUSH_SECONDS.observe(result.seconds)
    redis_set_json(name=FLUSH_LAST_KEY, value={**asdict(result), "finishedAt": timezone.now().isoformat()})
    flush_backlog()
    return result


def _merge(total: FlushResult, page: FlushResult) -> None:
    for name in ("written", "cleared", "stale_skipped", "checked", "expired", "batches", "failed"):
        setattr(total, name, getattr(total, name) + getattr(page, name))


WRITTEN, CONFLICT, FAILED, FENCED = "written", "conflict", "failed", "fenced"
# How long one check that this flusher still holds the lock (a GET) covers the writes that start after it.
# A check and the write it covers were never atomic: a write in flight when the lock is lost lands anyway
# (the fencing condition is what stops it overwriting a newer flusher). Sharing the check adds at most
# this much to that window. A watcher thread repeats the check every half window while the flush runs,
# so the writers find a fresh answer instead of waiting for a GET (measured: a fifth of a writer's time
# went to waiting for shared checks when each expiry made the next writer ask).
LOCK_CHECK_SECONDS = 0.01


@dataclass
class _Page:
    work: list[tuple[str, str, dict, str | None]]
    futures: list[Future]
    result: FlushResult
    nothing: dict[str, str]


class _Flush:
    """One flush run: each dirty phone is written with its own conditional PutItem, LIZZY_FLUSH_CONCURRENCY
    at a time. The condition is the lineage's base (what DynamoDB must still hold: the version this Redis
    copy descends from, or no live item) and the fencing number (no later flusher wrote the item), so a
    flush never moves DynamoDB backwards, never undoes a delete or expire, never overwrites a write made
    while Redis was away, and a flusher that lost its lock cannot overwrite a newer flusher's write."""

    def __init__(self, *, token: str, fence: int, lock_seconds: float, reported: bool) -> None:
        self.token = token
        self.fence = fence
        self.lock_seconds = lock_seconds
        self.reported = reported  # the fence item is up: count the items as version-checked for the admin
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.LIZZY_FLUSH_CONCURRENCY), thread_name_prefix="flush")
        self.lost = False  # set once any write finds the lock gone or fenced: no write starts after it
        self._checked_until = 0.0
        self._check_lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    def close(self) -> None:
        self._closed.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._watcher is not None:
            self._watcher.join()

    def _watch(self) -> None:
        """Keep the shared answer fresh: ask every half window until the flush ends or the lock is lost.
        A failed GET (Redis away) leaves the answer to age, and the next writer asks itself."""
        while not self._closed.wait(LOCK_CHECK_SECONDS / 2) and not self.lost:
            try:
                self._check()
            except RedisUnavailable:
                continue

    def _check(self) -> bool:
        """One GET; the watcher calls it without ``_check_lock``, a writer with it. Two answers may cross:
        ``lost`` is only ever set (a later True cannot clear it, and holds_lock reads it first), and a
        smaller ``_checked_until`` stored over a larger one only costs the next writer a GET."""
        asked = time.monotonic()  # the answer is true at least from when it was asked
        if not redis_lock_holds(name=FLUSH_LOCK_KEY, token=self.token):
            self.lost = True
            return False
        self._checked_until = max(self._checked_until, asked + LOCK_CHECK_SECONDS)
        return True

    def holds_lock(self) -> bool:
        """Does this flusher still hold the lock? One GET, shared by the writes starting within
        ``LOCK_CHECK_SECONDS`` of it (the writers wait for a check in progress rather than trust an old one);
        the first check starts the watcher that keeps the answer fresh."""
        if self.lost:
            return False
        if time.monotonic() < self._checked_until:
            return True
        with self._check_lock:
            if self.lost:
                return False
            if time.monotonic() < self._checked_until:
                return True
            if self._watcher is None and LOCK_CHECK_SECONDS > 0:
                self._watcher = threading.Thread(target=self._watch, name="flush-lock-watch", daemon=True)
                self._watcher.start()
            return self._check()

    def renew(self) -> None:
        if not redis_lock_renew(name=FLUSH_LOCK_KEY, token=self.token, ttl_seconds=self.lock_seconds):
            raise FlushLockLost

    def start(self, phones: list[str]) -> _Page:
        """Read the page's snapshot and start its conditional writes."""
        result = FlushResult(status="flushed")
        nothing: dict[str, str] = {}
        work: list[tuple[str, str, dict, str | None]] = []
        for phone, (counter, value, base) in zip(phones, redis_dirty_snapshot(phones=phones), strict=True):
            if counter is None:
                continue  # cleared since the page was read (another flush, or a fork dropped)
            if value is None:
                nothing[phone] = counter  # the session expired in Redis: nothing left to write
                result.expired += 1
                continue
            work.append((phone, counter, json_loads(value), base))
        if self.reported:
            result.checked += len(work)
        return _Page(
            work=work, futures=[self.pool.submit(self._write, entry) for entry in work], result=result, nothing=nothing
        )

    def finish(self, page: _Page) -> FlushResult:
        """Wait for the page's writes; then move the bases and clear the marks of what was written."""
        work, result, nothing = page.work, page.result, page.nothing
        outcomes = [future.result() for future in page.futures]  # a FlushLockLost in a writer is raised here
        if any(outcome == FENCED for outcome in outcomes):
            self.lost = True
            raise FlushLockLost  # a newer flusher wrote one of these items: this one is late
        flushed: dict[str, tuple[str, int]] = {}
        forks: list[tuple[str, str | None]] = []
        for (phone, counter, document, base), outcome in zip(work, outcomes, strict=True):
            if outcome == WRITTEN:
                flushed[phone] = (counter, int(document.get("version", 0)))
            elif outcome == CONFLICT:
                forks.append((phone, base))
            else:
                result.failed += 1  # DynamoDB throttled or away: the mark stays, the next flush retries
        result.written += len(flushed)
        result.batches += len(work)
        if forks:
            self.renew()  # fencing: only the lock holder may conclude that DynamoDB forked away
            for phone, base in forks:
                if redis_session_drop(phone=phone, expected_base=base):
                    result.stale_skipped += 1
                    metrics.SESSION_FORKS.labels("flush").inc()
                    logger.warning("write-behind copy of %s dropped: DynamoDB moved without it", mask_phone(phone))
        result.cleared += redis_dirty_flushed(flushed=flushed) + redis_dirty_clear(counters=nothing)
        return result

    def _write(self, entry: tuple[str, str, dict, str | None]) -> str:
        phone, _counter, document, base = entry
        now = int(time.time())
        version = int(document.get("version", 0))
        if is_tombstone(document):
            item = {"phone": phone, "version": version, "ttl": now}  # the leftover a delete leaves
        else:
            item = {**document}
            item["ttl"] = session_expiry(document.get("lastActivity")) or (now + settings.LIZZY_SESSION_TTL_SECONDS)
        item[FLUSHED_BY] = self.fence
        names = {"#fb": FLUSHED_BY}
        values: dict = {":fence": self.fence}
        fenced = "(attribute_not_exists(#fb) OR #fb <= :fence)"
        if base is None:  # marked before bases existed: never backwards, never over a live newer item
            names.update({"#phone": "phone", "#ttl": "ttl", "#v": "version"})
            values.update({":now": now, ":v": version})
            condition = f"(attribute_not_exists(#phone) OR #ttl <= :now OR #v < :v) AND {fenced}"
        elif int(base) == 0:  # the lineage began where DynamoDB had no item at all
            names["#phone"] = "phone"
            condition = f"attribute_not_exists(#phone) AND {fenced}"
        else:  # DynamoDB must still hold the version the lineage began from (or TTL swept that leftover)
            names.update({"#phone": "phone", "#v": "version"})
            values[":base"] = int(base)
            condition = f"(#v = :base OR attribute_not_exists(#phone)) AND {fenced}"
        try:
            if not self.holds_lock():
                raise FlushLockLost
            dynamodb_put_item(table=SESSIONS.name, item=item, condition=condition, names=names, values=values)
        except ConditionFailed:
            return self._classify(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            logger.warning("flush of %s failed: %s", mask_phone(phone), getattr(exc, "code", exc))
            return FAILED
        return WRITTEN

    def _classify(self, phone: str) -> str:
        """Why did the condition fail? A later flusher's write (this flush is late: stop), or DynamoDB was
        written without Redis (a fork: DynamoDB wins)."""
        try:
            current = dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)
        except (DynamoDBError, ServiceUnavailable):
            return FAILED  # cannot tell: keep the mark, decide next time
        if current is not None and int(current.get(FLUSHED_BY, 0)) > self.fence:
            return FENCED
        return CONFLICT
