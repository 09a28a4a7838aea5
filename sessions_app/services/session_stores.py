"""The session stores behind ``get_session_store()``, one per mode (docs/SESSION_STORE.md).

Every store keeps the contract of ``DynamoDBSessionStore``: ``load`` returns a live session or None,
``save`` writes only if the stored version is still ``expected_version`` (None: no live session) and
raises ``SessionConflict`` otherwise, ``delete`` likewise. What differs is where the compare-and-set
happens (the *primary*) and what is copied where:

=====================  ==================  =====================================================
mode                   primary (CAS)       other store
=====================  ==================  =====================================================
redis_only             Redis (Lua CAS)     -
parallel               Redis               DynamoDB mirror, never moved backwards; reads fall back
cutover                DynamoDB            Redis mirror, so a rollback to parallel loses nothing
dynamodb_only          DynamoDB            -
cached                 DynamoDB            Redis hot tier: cache-aside reads, write-through
cached_write_behind    Redis + dirty set   DynamoDB via the flusher (write_behind.py)
=====================  ==================  =====================================================

In the cached modes Redis sits behind a circuit breaker: N consecutive errors open it, and for T
seconds reads and writes go straight to DynamoDB (write-behind becomes write-through), then one
trial call decides. A Redis failure never fails a session request in those modes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import ConditionFailed, DynamoDBError, dynamodb_put_item
from lizzy.errors import ServiceUnavailable
from lizzy.phone import hash_phone, mask_phone
from lizzy.redis import (
    DIVERGENCE_KEY,
    RedisUnavailable,
    is_tombstone,
    json_dumps,
    json_loads,
    redis_session_cas,
    redis_session_drop,
    redis_session_forget_clean,
    redis_session_get,
    redis_session_set_if_newer,
    redis_session_tombstone,
    redis_window_add,
    redis_window_count,
    redis_window_latest,
)
from sessions_app.models import StoreMode
from sessions_app.services.sessions import (
    ERR_CONFLICT,
    ERR_EXISTS,
    DynamoDBSessionStore,
    Session,
    SessionConflict,
    SessionStore,
    session_expiry,
    session_stamped,
)
from sessions_app.services.write_behind import write_behind_fence_raise

logger = logging.getLogger(__name__)
T = TypeVar("T")

DIVERGENCE_SAMPLES = 20
SESSION_CACHE_SAMPLE = "lizzy_session_cache_requests_total"


# --- Circuit breaker ------------------------------------------------------------------------------


class CircuitBreaker:
    """closed → (N consecutive failures) → open → (T seconds) → half-open → one trial → closed/open.

    Per process: each web or worker process learns Redis is away from its own calls, within N of them.
    ``clock`` is injectable so tests move time instead of sleeping.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
    _STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

    def __init__(
        self,
        name: str,
        *,
        threshold: int | None = None,
        reset_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._gauge = metrics.BREAKER_STATE.labels(name)
        self._gauge.set(0)

    @property
    def threshold(self) -> int:
        return self._threshold or settings.LIZZY_BREAKER_THRESHOLD

    @property
    def reset_seconds(self) -> float:
        return self._reset_seconds if self._reset_seconds is not None else settings.LIZZY_BREAKER_RESET_SECONDS

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self.clock() - self._opened_at >= self.reset_seconds:
                return self.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May we call Redis now? In half-open, only one trial call at a time."""
        with self._lock:
            if self._state == self.CLOSED:
                return True
            if self._state == self.OPEN and self.clock() - self._opened_at < self.reset_seconds:
                return False
            if self._trial_in_flight:
                return False
            self._set(self.HALF_OPEN)
            self._trial_in_flight = True
            return True

    def success(self) -> None:
        if self._state == self.CLOSED and not self._failures:
            return  # the common case on every request: nothing to change, no lock, no gauge write
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(self.CLOSED)

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state == self.HALF_OPEN or self._failures >= self.threshold:
                if self._state != self.OPEN:
                    logger.warning("circuit breaker %s opened after %s failure(s)", self.name, self._failures)
                self._opened_at = self.clock()
                self._set(self.OPEN)

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(self.CLOSED)

    def _set(self, state: str) -> None:
        if state != self._state:
            self._gauge.set(self._STATE_VALUE[state])
        self._state = state


redis_breaker = CircuitBreaker("session_redis")


# --- Helpers --------------------------------------------------------------------------------------


# Label children looked up once: ``labels()`` validates and locks on every call, which a hot-tier hit
# (tens of µs in all) notices (docs/BENCHMARKS.md, benchmark 2).
_tier_histograms: dict[tuple[str, str], Any] = {}
_CACHE_HIT = metrics.SESSION_CACHE_REQUESTS.labels("hit")
_CACHE_MISS = metrics.SESSION_CACHE_REQUESTS.labels("miss")


@contextmanager
def _timed(tier: str, operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        histogram = _tier_histograms.get((tier, operation))
        if histogram is None:
            histogram = _tier_histograms.setdefault(
                (tier, operation), metrics.SESSION_TIER_LATENCY.labels(tier, operation)
            )
        histogram.observe(elapsed)
        _latency_samples.record(tier, elapsed)


class _LatencySamples:
    """The last few hundred latencies per tier, for p50/p95 on the admin page (Prometheus has the rest)."""

    SIZE = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}

    def record(self, tier: str, value: float) -> None:
        samples = self._samples.get(tier)
        if samples is None:
            with self._lock:
                samples = self._samples.setdefault(tier, deque(maxlen=self.SIZE))
        samples.append(value)  # deque.append is atomic; maxlen drops the oldest

    def percentiles(self) -> dict[str, dict[str, float | None]]:
        with self._lock:
            out: dict[str, dict[str, float | None]] = {}
            for tier, samples in list(self._samples.items()):
                ordered = sorted(samples.copy())  # copy(): atomic, unlike iterating a deque being appended to
                out[tier] = {
                    "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3) if ordered else None,
                    "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3)
                    if ordered
                    else None,
                    "samples": len(ordered),
                }
            return out


_latency_samples = _LatencySamples()


def redis_document(session: Session) -> dict[str, Any]:
    """The camelCase document as Redis holds it: the DynamoDB item without ``ttl`` (the key expires)."""
    document = session.to_document()
    document.pop("ttl", None)
    return document


def session_from_redis(document: dict[str, Any]) -> Session:
    """A session read from Redis: one GET, its ``ttl`` derived as every write set the key's expiry."""
    session = Session.from_document(document)
    session.ttl = session_expiry(session.last_activity)
    return session


def canonical(session: Session | None) -> dict[str, Any] | None:
    """What must agree between the two stores: the document without ``ttl``, numbers normalised."""
    return None if session is None else json_loads(json_dumps(redis_document(session)))


def _conflict(session: Session, expected_version: int | None) -> SessionConflict:
    logger.info("session write conflict for %s at version %s", mask_phone(session.phone), expected_version)
    message = ERR_EXISTS if expected_version is None else ERR_CONFLICT.format(expected=expected_version)
    return SessionConflict(message, details={"expectedVersion": expected_version})


def _dynamodb_mirror(store: DynamoDBSessionStore, stored: Session) -> None:
    """Copy a version into DynamoDB unless a newer one is there already (a mirror never goes back)."""
    try:
        with _timed("dynamodb", "mirror"):
            dynamodb_put_item(
                table=store.table,
                item=stored.to_document(),
                # An expired leftover (DynamoDB sweeps it days later) is no session: it never wins.
                condition="attribute_not_exists(#phone) OR #ttl <= :now OR #v < :v",
                names={"#phone": "phone", "#v": "version", "#ttl": "ttl"},
                values={":v": stored.version, ":now": int(time.time())},
            )
    except ConditionFailed:
        metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", "newer_present").inc()
    except (DynamoDBError, ServiceUnavailable) as exc:
        metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
        logger.warning("DynamoDB mirror write failed for %s: %s", mask_phone(stored.phone), exc.code)


def _publish(kind: str, session: Session | None, phone: str) -> None:
    from sessions_app.services.events import session_event_publish

    session_event_publish(
        kind=kind,
        phone=phone,
        node=session.current_node if session else None,
        version=session.version if session else None,
    )


# --- Stores ---------------------------------------------------------------------------------------


class RedisSessionStore:
    """The legacy store: one JSON string per phone under ``lizzy:session:{phone}``, expiring with the session.

    A deleted or expired session is a tombstone (lizzy/redis_scripts/session_tombstone.lua): absent to
    every read here, and what keeps older copies from being filled back.
    """

    def peek(self, phone: str) -> tuple[Session | None, int]:
        """(live session or None, the version a new lifetime must start above: a tombstone's)."""
        with _timed("redis", "get"):
            found = redis_session_get(phone=phone)
        if found is None:
            return None, 0
        if is_tombstone(found):
            return None, int(found.get("version", 0))
        return session_from_redis(found), 0

    def load(self, phone: str) -> Session | None:
        return self.peek(phone)[0]

    def save(
        self, session: Session, *, expected_version: int | None, mark_dirty: bool = False, version_floor: int = 0
    ) -> Session:
        stamped_from = expected_version if expected_version is not None else version_floor
        stored = session_stamped(session=session, expected_version=stamped_from)
        with _timed("redis", "cas"):
            written, _ = redis_session_cas(
                phone=stored.phone,
                document=redis_document(stored),
                expected_version=expected_version,
                expire_at=stored.ttl,
                mark_dirty=mark_dirty,
            )
        if not written:
            raise _conflict(session, expected_version)
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "deleted")

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        """In Redis a session past its expiry is an absent key: expiring now is a conditional tombstone."""
        return self._retire(phone, expected_version, "expired")

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        result = redis_session_tombstone(phone=phone, expected_version=expected_version, kind=kind)
        if result < 0:
            raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
        return result == 1


class ParallelSessionStore:
    """Seed 000 phase 2: Redis is still the store of record; DynamoDB gets every write; reads compare."""

    def __init__(self, redis_store: RedisSessionStore, dynamodb_store: DynamoDBSessionStore) -> None:
        self.redis = redis_store
        self.dynamodb = dynamodb_store

    def load(self, phone: str) -> Session | None:
        try:
            found = self.redis.load(phone)
        except RedisUnavailable:
            metrics.SESSION_FALLBACKS.labels("parallel", "redis_error").inc()
            return self.dynamodb.load(phone)
        if found is None:
            metrics.SESSION_FALLBACKS.labels("parallel", "redis_miss").inc()
            return self.dynamodb.load(phone)
        if random.random() < settings.LIZZY_SHADOW_READ_RATE:  # noqa: S311 - sampling, not security
            found = self._shadow_compare(phone, found)
        return found

    def _shadow_compare(self, phone: str, from_redis: Session) -> Session:
        try:
            from_dynamodb = self.dynamodb.load(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            logger.warning("shadow read of DynamoDB failed: %s", exc.code)
            return from_redis
        metrics.SESSION_SHADOW_READS.inc()
        left, right = canonical(from_redis), canonical(from_dynamodb)
        if left == right:
            return from_redis
        fields = sorted(k for k in set(left) | set(right or {}) if (right or {}).get(k) != left.get(k))
        shadow_divergence_record(phone=phone, fields=fields)
        # Serve the newer one: after a rollback from cutover a stale Redis copy must not win.
        if from_dynamodb is not None and from_dynamodb.version > from_redis.version:
            return from_dynamodb
        return from_redis

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        try:
            stored = self.redis.save(session, expected_version=expected_version)
        except SessionConflict:
            # Not in Redis (expired there, or written during cutover): DynamoDB decides.
            if expected_version is None or self.redis.load(session.phone) is not None:
                raise
            stored = self.dynamodb.save(session, expected_version=expected_version)
            redis_session_set_if_newer(phone=stored.phone, document=redis_document(stored), expire_at=stored.ttl)
            return stored
        _dynamodb_mirror(self.dynamodb, stored)
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        deleted = self.redis.delete(phone, expected_version=expected_version)
        try:
            deleted_there = self.dynamodb.delete(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
            deleted_there = False
        return deleted or deleted_there

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        if not self.redis.expire(phone, expected_version=expected_version):
            # Not in Redis (expired there, or written during cutover): DynamoDB decides, as in save().
            return self.dynamodb.expire(phone, expected_version=expected_version)
        try:
            self.dynamodb.expire(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
        return True


class CutoverSessionStore:
    """Seed 000 phase 3: DynamoDB is the store of record; Redis still gets every write (rollback safety)."""

    def __init__(self, dynamodb_store: DynamoDBSessionStore) -> None:
        self.dynamodb = dynamodb_store

    def load(self, phone: str) -> Session | None:
        with _timed("dynamodb", "get"):
            return self.dynamodb.load(phone)

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        with _timed("dynamodb", "put"):
            stored = self.dynamodb.save(session, expected_version=expected_version)
        try:
            with _timed("redis", "mirror"):
                redis_session_set_if_newer(phone=stored.phone, document=redis_document(stored), expire_at=stored.ttl)
        except RedisUnavailable as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("redis", exc.code).inc()
            logger.warning("Redis mirror write failed for %s", mask_phone(stored.phone))
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "deleted")

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "expired")

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        leftover = self.dynamodb.retire(phone, expected_version=expected_version, kind=kind)
        # The Redis mirror gets a tombstone too: after a rollback to parallel it must not serve the session.
        try:
            redis_session_tombstone(phone=phone, kind=kind, floor_version=leftover)
        except RedisUnavailable as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("redis", exc.code).inc()
        return leftover is not None


_BYPASSED: set[str] = set()  # phones this process wrote to DynamoDB while Redis was away
_BYPASSED_LOCK = threading.Lock()


class CachedSessionStore:
    """Seed 001: DynamoDB is the store of record, Redis the hot tier behind a circuit breaker.

    Reads are cache-aside (Redis, else DynamoDB then fill Redis): a hit costs one Redis GET. A fill
    never replaces a newer version, a tombstone or a dirty copy (session_set_if_newer.lua), and versions
    are monotonic across lifetimes, so a read made before a delete cannot fill the deleted copy back.
    Write-through: conditional PutItem in DynamoDB, then Redis. Write-behind: Lua CAS in Redis that
    also marks the phone dirty; the flusher copies it to DynamoDB with a conditional write per item.
    Deletes and expires: write-through, DynamoDB decides (conditional) and Redis gets a tombstone;
    write-behind, Redis gets a dirty tombstone the flusher applies.

    While the breaker is open both go straight to DynamoDB (write-behind becomes write-through), so a
    Redis outage slows requests down instead of failing them. Each phone written that way is
    remembered; before this process uses Redis again, their Redis copies (dirty ones included: they are
    the older fork) are dropped, so the turns made meanwhile are never hidden or overwritten by them.
    """

    def __init__(
        self,
        dynamodb_store: DynamoDBSessionStore,
        *,
        write_behind: bool,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.dynamodb = dynamodb_store
        self.redis = RedisSessionStore()
        self.write_behind = write_behind
        self.breaker = breaker or redis_breaker
        self.mode = StoreMode.CACHED_WRITE_BEHIND if write_behind else StoreMode.CACHED
        # One memory per process, shared by the cached stores: a phone written while Redis was away in
        # `cached` must be healed even if this process is in `cached_write_behind` when Redis returns.
        self._bypassed = _BYPASSED
        self._bypassed_lock = _BYPASSED_LOCK

    def _try_redis(self, action: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, result) when Redis answered; (False, None) when the breaker is open or the call failed."""
        if not self.breaker.allow():
            metrics.SESSION_FALLBACKS.labels(self.mode, "breaker_open").inc()
            return False, None
        try:
            if self._bypassed:
                self._heal()
            result = action()
        except RedisUnavailable:
            self.breaker.failure()
            metrics.SESSION_FALLBACKS.labels(self.mode, "redis_error").inc()
            return False, None
        except Exception:
            self.breaker.success()  # Redis answered (a conflict, for instance): it is healthy.
            raise
        self.breaker.success()
        return True, result

    def _bypass(self, phone: str) -> None:
        """A write reached DynamoDB without Redis: the Redis copy (if any) is now older than DynamoDB."""
        with self._bypassed_lock:
            self._bypassed.add(phone)

    def _heal(self) -> None:
        """Drop the Redis copies of the phones written while Redis was away (raises RedisUnavailable)."""
        with self._bypassed_lock:
            phones = list(self._bypassed)
        for phone in phones:
            if redis_session_drop(phone=phone):
                metrics.SESSION_FORKS.labels("recovery").inc()
            with self._bypassed_lock:
                self._bypassed.discard(phone)

    def _fill(self, session: Session) -> bool:
        answered, _ = self._try_redis(
            lambda: redis_session_set_if_newer(
                phone=session.phone, document=redis_document(session), expire_at=session.ttl
            )
        )
        return answered

    def load(self, phone: str) -> Session | None:
        def get() -> dict[str, Any] | None:
            with _timed("redis", "get"):
                return redis_session_get(phone=phone)

        answered, found = self._try_redis(get)
        if answered and found is not None:
            _CACHE_HIT.inc()
            return None if is_tombstone(found) else session_from_redis(found)
        if answered:
            _CACHE_MISS.inc()
        with _timed("dynamodb", "get"):
            durable = self.dynamodb.load(phone)
        if durable is not None and answered:
            self._fill(durable)
        return durable

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        if self.write_behind:
            stored = self._save_behind(session, expected_version)
            if stored is not None:
                return stored
            metrics.SESSION_WRITE_THROUGH_DEGRADED.inc()
            self._fence_before_bypass()
        return self._save_through(session, expected_version)

    def _fence_before_bypass(self) -> None:
        """Write-behind, about to write DynamoDB without Redis: note it for the admin (write_behind)."""
        if self.write_behind:
            write_behind_fence_raise()

    def _save_through(self, session: Session, expected_version: int | None) -> Session:
        try:
            with _timed("dynamodb", "put"):
                stored = self.dynamodb.save(session, expected_version=expected_version)
        except SessionConflict:
            # The caller may have read a stale hot-tier copy: drop it so the retry reads DynamoDB (never
            # a copy holding unflushed write-behind turns: they exist nowhere else).
            self._try_redis(lambda: redis_session_forget_clean(phone=session.phone))
            raise
        if not self._fill(stored):
            self._bypass(stored.phone)
        return stored

    def _save_behind(self, session: Session, expected_version: int | None) -> Session | None:
        """The stored session, or None when Redis is away (the caller writes through instead)."""
        if expected_version is not None:
            # The usual turn: its version is in the hot tier, and the CAS alone settles it (one round trip
            # fewer than reading first: docs/BENCHMARKS.md, calls per turn). The CAS reports an absent key
            # as -1; only then does DynamoDB have to say whether the session exists.
            stored = session_stamped(session=session, expected_version=expected_version)

            def cas() -> tuple[bool, int]:
                with _timed("redis", "cas"):
                    return redis_session_cas(
                        phone=stored.phone,
                        document=redis_document(stored),
                        expected_version=expected_version,
                        expire_at=stored.ttl,
                        mark_dirty=True,
                    )

            answered, outcome = self._try_redis(cas)
            if not answered:
                return None
            written, current = outcome
            if written:
                return stored
            if current != -1:
                raise _conflict(session, expected_version)
        # A create (a live session anywhere must refuse it), or the session is not in the hot tier.
        answered, peeked = self._try_redis(lambda: self.redis.peek(session.phone))
        if not answered:
            return None
        cached, floor = peeked
        if cached is None and not floor:
            # Not in the hot tier: DynamoDB knows whether a session exists and at which version.
            with _timed("dynamodb", "get"):
                durable, floor = self.dynamodb.load_with_floor(session.phone)
            if durable is not None:
                self._fill(durable)
            elif expected_version is not None:
                raise _conflict(session, expected_version)
        answered, stored = self._try_redis(
            lambda: self.redis.save(session, expected_version=expected_version, mark_dirty=True, version_floor=floor)
        )
        return stored if answered else None

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "deleted")

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        """Expire the session so no process serves it again (see ``_retire``)."""
        return self._retire(phone, expected_version, "expired")

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        """Write-through: DynamoDB (the store of record) checks the version, then Redis gets a tombstone
        (a conflict drops the clean hot copy, which may be the stale one the operator saw). Write-behind:
        Redis may hold newer, unflushed versions, so Redis checks the version and keeps a dirty tombstone
        the flusher applies to DynamoDB (conditionally); a session not in Redis is retired in DynamoDB."""
        if self.write_behind:
            answered, result = self._try_redis(
                lambda: redis_session_tombstone(
                    phone=phone, expected_version=expected_version, kind=kind, mark_dirty=True
                )
            )
            if answered and result is not None and result < 0:
                raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
            if answered and result == 1:
                return True
            if not answered:
                self._fence_before_bypass()
        try:
            leftover = self.dynamodb.retire(phone, expected_version=expected_version, kind=kind)
        except SessionConflict:
            self._try_redis(lambda: redis_session_forget_clean(phone=phone))
            raise
        if leftover is None:
            self._try_redis(lambda: redis_session_forget_clean(phone=phone))  # a stale copy of a gone session
            return False
        answered, _ = self._try_redis(lambda: redis_session_tombstone(phone=phone, kind=kind, floor_version=leftover))
        if not answered:
            self._bypass(phone)
        return True


class PublishingStore:
    """Wraps a store so every change publishes an event (pub/sub, seed 001)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner

    def load(self, phone: str) -> Session | None:
        return self.inner.load(phone)

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        stored = self.inner.save(session, expected_version=expected_version)
        _publish("session.created" if expected_version is None else "session.updated", stored, stored.phone)
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        deleted = self.inner.delete(phone, expected_version=expected_version)
        if deleted:
            _publish("session.deleted", None, phone)
        return deleted

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        expired = self.inner.expire(phone, expected_version=expected_version)
        if expired:
            _publish("session.expired", None, phone)
        return expired


# --- Mode → store ---------------------------------------------------------------------------------

_stores: dict[str, SessionStore] = {}
_stores_lock = threading.Lock()


def _build(mode: str) -> SessionStore:
    dynamodb = DynamoDBSessionStore()
    if mode == StoreMode.REDIS_ONLY:
        return RedisSessionStore()
    if mode == StoreMode.PARALLEL:
        return ParallelSessionStore(RedisSessionStore(), dynamodb)
    if mode == StoreMode.CUTOVER:
        return CutoverSessionStore(dynamodb)
    if mode == StoreMode.CACHED:
        return CachedSessionStore(dynamodb, write_behind=False)
    if mode == StoreMode.CACHED_WRITE_BEHIND:
        return CachedSessionStore(dynamodb, write_behind=True)
    return dynamodb


def stores_reset() -> None:
    """Forget the stores and what they remember (phones written while Redis was away): tests, per Redis."""
    with _stores_lock:
        _stores.clear()
    with _BYPASSED_LOCK:
        _BYPASSED.clear()


def store_for_mode(mode: str) -> SessionStore:
    store = _stores.get(mode)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(mode, PublishingStore(_build(mode)))
    return store


# --- Shadow reads ---------------------------------------------------------------------------------


def shadow_divergence_record(*, phone: str, fields: list[str]) -> None:
    """Count and sample a divergence (hashed phone and field names only: no personal data)."""
    metrics.SESSION_DIVERGENCES.inc()
    now = time.time()
    sample = {"time": timezone.now().isoformat(), "phoneHash": hash_phone(phone), "fields": fields, "n": now}
    logger.warning("shadow read divergence for %s in %s", sample["phoneHash"], ",".join(fields))
    try:
        redis_window_add(
            name=DIVERGENCE_KEY, member=json_dumps(sample), score=now, keep_seconds=settings.LIZZY_SHADOW_WINDOW_SECONDS
        )
    except RedisUnavailable:
        logger.warning("could not record the shadow-read divergence in Redis")


def shadow_read_stats() -> dict[str, Any]:
    """Divergences of the last window (shared by all processes, in Redis) and the latest samples."""
    since = time.time() - settings.LIZZY_SHADOW_WINDOW_SECONDS
    samples = [json_loads(s) for s in redis_window_latest(name=DIVERGENCE_KEY, since=since, limit=DIVERGENCE_SAMPLES)]
    for sample in samples:
        sample.pop("n", None)
    return {
        "divergences": redis_window_count(name=DIVERGENCE_KEY, since=since),
        "window_seconds": settings.LIZZY_SHADOW_WINDOW_SECONDS,
        "samples": samples,
    }


@dataclass
class StoreStats:
    mode: str
    hits: float
    misses: float
    hit_rate: float | None
    breaker: str
    latency: dict[str, dict[str, float | None]]


def session_store_stats() -> StoreStats:
    """Hit rate, breaker state and per-tier p50/p95 of this process (the admin and ops console show them)."""
    from sessions_app.services.store_modes import store_mode_current

    hits = metrics.sample_value(SESSION_CACHE_SAMPLE, {"result": "hit"})
    misses = metrics.sample_value(SESSION_CACHE_SAMPLE, {"result": "miss"})
    total = hits + misses
    return StoreStats(
        mode=store_mode_current(),
        hits=hits,
        misses=misses,
        hit_rate=(hits / total) if total else None,
        breaker=redis_breaker.state,
        latency=_latency_samples.percentiles(),
    )
