"""``cached`` (seed 001): DynamoDB is the store of record, Redis the hot tier behind a circuit breaker.

Reads are cache-aside (Redis, else DynamoDB then fill Redis): a hit costs one Redis GET. A fill never
replaces a newer version, a tombstone or a dirty copy (session_set_if_newer.lua), and versions are
monotonic across lifetimes, so a read made before a delete cannot fill the deleted copy back. Writes are
write-through: conditional PutItem in DynamoDB, then Redis. Deletes and expires: DynamoDB decides
(conditional) and Redis gets a tombstone. ``write_behind`` builds on this store.

N consecutive Redis errors open the breaker, and for T seconds reads and writes go straight to DynamoDB,
then one trial call decides: a Redis failure never fails a session request. Each phone written while
Redis was away is remembered, here and in the shared bypass registry (``bypass.py``, before the write is
acknowledged); before this process uses Redis again after a Redis error, it applies its memory and the
whole registry: the Redis copies older than those writes (dirty ones included: they are the older fork)
are dropped, so the turns made meanwhile are never hidden or overwritten by them, whichever process
made them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

from lizzy import metrics
from lizzy.dynamodb import DynamoDBError
from lizzy.errors import ServiceUnavailable
from lizzy.redis import (
    RedisUnavailable,
    is_tombstone,
    json_loads,
    redis_session_entries,
    redis_session_forget_clean,
    redis_session_set_if_newer,
    redis_session_tombstone,
)
from sessions_app.models import StoreMode
from sessions_app.services.store.base import ERR_CONFLICT, RetiringSessionStore, Session, SessionConflict
from sessions_app.services.store.breaker import CircuitBreaker, redis_breaker
from sessions_app.services.store.bypass import bypass_apply, bypass_register, bypass_registry_read
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.redis_only import RedisSessionStore, redis_document, session_from_redis
from sessions_app.services.store.timing import timed

T = TypeVar("T")

ENDED_ALREADY = 2  # session_tombstone.lua: a tombstone is there (with a floor: at or above it)

_CACHE_HIT = metrics.SESSION_CACHE_REQUESTS.labels("hit")
_CACHE_MISS = metrics.SESSION_CACHE_REQUESTS.labels("miss")

# One memory per process, shared by the cached stores: a phone written while Redis was away in `cached`
# must be healed even if this process is in `cached_write_behind` when Redis returns.
_BYPASSED: dict[str, int] = {}  # phone -> the version this process wrote to DynamoDB while Redis was away
_BYPASSED_LOCK = threading.Lock()
# Redis failures this process has seen (a call failed, or the breaker refused one), and how many of them
# its last complete recovery covered: while they differ, the next Redis use applies the shared registry.
_redis_failures = 0
_recovered_failures = 0
_registry_retry_at = 0.0  # after an unreadable registry, the next recovery tries no sooner (monotonic)


def bypassed_forget() -> None:
    """Tests, per Redis: forget the phones written while Redis was away, and the failures seen."""
    global _redis_failures, _recovered_failures, _registry_retry_at
    with _BYPASSED_LOCK:
        _BYPASSED.clear()
        _redis_failures = _recovered_failures = 0
        _registry_retry_at = 0.0


def redis_failure_seen() -> None:
    """This process found Redis away: before it uses Redis again it applies the shared registry."""
    global _redis_failures
    with _BYPASSED_LOCK:
        _redis_failures += 1


def recovery_pending() -> bool:
    """Has this process seen Redis fail since its last recovery (the checker and the admin ask)?"""
    return _redis_failures != _recovered_failures


ERR_RECOVERY_PENDING = (
    "Redis is back, but DynamoDB cannot say yet which sessions were written without it ({reason}). "
    "Nothing was written; try again shortly."
)


class RegistryUnreadable(Exception):
    """The recovery could not read the shared registry: Redis is not used until it can."""


class RecoveryPending(ServiceUnavailable):
    """A write-behind session call while this process cannot finish its recovery (503, nothing written):
    DynamoDB's copy may lack unflushed Redis turns, and Redis's copy may be older than a registered write."""

    code = "redis_recovery_pending"


class CachedSessionStore(RetiringSessionStore):
    mode = StoreMode.CACHED

    def __init__(self, dynamodb_store: DynamoDBSessionStore, *, breaker: CircuitBreaker | None = None) -> None:
        self.dynamodb = dynamodb_store
        self.redis = RedisSessionStore()
        self.breaker = breaker or redis_breaker
        self._bypassed = _BYPASSED
        self._bypassed_lock = _BYPASSED_LOCK

    # cached: a read whose recovery cannot finish goes to DynamoDB, the store of record. write_behind: refused,
    # since DynamoDB may lack the unflushed turns Redis holds (reading or writing through would drop them).
    refuses_unrecovered = False

    def _try_redis(self, action: Callable[[], T], *, before_write: bool = False) -> tuple[bool, T | None]:
        """(True, result) when Redis answered; (False, None) when the breaker is open or the call failed.
        ``before_write``: a read or a write-behind write, not the Redis half of a write DynamoDB already took;
        in write-behind it raises RecoveryPending when the recovery cannot read the shared registry."""
        if not self.breaker.allow():
            redis_failure_seen()
            metrics.SESSION_FALLBACKS.labels(self.mode, "breaker_open").inc()
            return False, None
        try:
            if self._bypassed or recovery_pending():  # two reads of plain values: a hit stays one GET
                self._heal()
            result = action()
        except RegistryUnreadable as exc:
            self.breaker.abandon()  # Redis was not asked: the trial, if this was one, is still to be made
            metrics.SESSION_FALLBACKS.labels(self.mode, "registry_unreadable").inc()
            if before_write and self.refuses_unrecovered:
                raise RecoveryPending(ERR_RECOVERY_PENDING.format(reason=exc)) from exc
            return False, None
        except RedisUnavailable:
            redis_failure_seen()
            self.breaker.failure()
            metrics.SESSION_FALLBACKS.labels(self.mode, "redis_error").inc()
            return False, None
        except Exception:
            self.breaker.success()  # Redis answered (a conflict, for instance): it is healthy.
            raise
        self.breaker.success()
        return True, result

    def _bypass(self, phone: str, version: int) -> None:
        """A write reached DynamoDB without Redis: a Redis copy older than ``version`` is now stale. Remembered
        here and in the shared registry, before the caller acknowledges the write (one UpdateItem)."""
        with self._bypassed_lock:
            self._bypassed[phone] = max(version, self._bypassed.get(phone, 0))
        bypass_register(phone=phone, version=version)

    def _heal(self) -> None:
        """The recovery, before this process uses Redis again: drop the Redis copies older than what this
        process, and (after a Redis error here) any process in the shared registry, wrote while Redis was
        away (raises RedisUnavailable, or RegistryUnreadable when DynamoDB cannot say). A copy written on
        top of such a write since, once Redis was back, is newer and stays: the heal may run long after."""
        global _recovered_failures, _registry_retry_at
        failures = _redis_failures
        with self._bypassed_lock:
            written = dict(self._bypassed)
        if failures != _recovered_failures:
            if time.monotonic() < _registry_retry_at:
                raise RegistryUnreadable("retrying shortly")  # one DynamoDB timeout per period, not per call
            try:
                entries = bypass_registry_read()
            except (DynamoDBError, ServiceUnavailable) as exc:
                metrics.SESSION_BYPASS_REGISTRY.labels("unreadable").inc()
                _registry_retry_at = time.monotonic() + settings.LIZZY_BREAKER_RESET_SECONDS
                raise RegistryUnreadable(getattr(exc, "code", str(exc))) from exc
            for entry in entries:  # expired ones too: a dirty tombstone outlives its entry (bypass.py)
                if entry.version > written.get(entry.phone, 0):
                    written[entry.phone] = entry.version
        bypass_apply(written, where="recovery")
        with self._bypassed_lock:
            for phone, version in written.items():
                # applied at this version or above (a registry entry may be higher): remembered no longer,
                # else every later Redis call, a hot hit included, would run this heal first
                if self._bypassed.get(phone, version + 1) <= version:
                    del self._bypassed[phone]
            _recovered_failures = max(_recovered_failures, failures)

    def _fill(self, session: Session) -> bool:
        """Did Redis take the copy? False when Redis is away, and when it refused (a newer version, a
        tombstone, or a dirty copy: after a write-through, an older lineage that now hides the write)."""
        answered, written = self._try_redis(
            lambda: redis_session_set_if_newer(
                phone=session.phone, document=redis_document(session), expire_at=session.ttl
            )
        )
        return answered and bool(written)

    def _forget_clean(self, phone: str, *, keep_tombstone: bool = False) -> None:
        """Drop the clean hot copy, which may be the stale one a caller read (never a dirty copy: it holds
        unflushed write-behind turns that exist nowhere else)."""
        self._try_redis(lambda: redis_session_forget_clean(phone=phone, keep_tombstone=keep_tombstone))

    def load(self, phone: str) -> Session | None:
        answered, found = self._try_redis(lambda: self.redis.get_document(phone), before_write=True)
        if answered and found is not None:
            _CACHE_HIT.inc()
            return None if is_tombstone(found) else session_from_redis(found)
        if answered:
            _CACHE_MISS.inc()
        with timed("dynamodb", "get"):
            durable = self.dynamodb.load(phone)
        if durable is not None and answered:
            self._fill(durable)
        return durable

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        return self._save_through(session, expected_version)

    def _save_through(self, session: Session, expected_version: int | None) -> Session:
        try:
            with timed("dynamodb", "put"):
                stored = self.dynamodb.save(session, expected_version=expected_version)
        except SessionConflict:
            self._forget_clean(session.phone)  # so the caller's retry reads DynamoDB
            raise
        if not self._fill(stored):
            self._bypass(stored.phone, stored.version)  # applying it drops only a copy older than the write
        return stored

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        """An unflushed write-behind end in Redis (a process in write-behind, as while the processes follow a mode
        change) is the session's end: DynamoDB's live copy is the stale one the flush replaces. Ending that would
        acknowledge an end of nothing, and its tombstone would end a lifetime created on the unflushed one
        meanwhile (whose base is that end's, below the leftover). One Redis round trip more per end."""
        answered, entries = self._try_redis(lambda: redis_session_entries(phones=[phone]))
        if answered and entries:
            value, _expiry, dirty = entries[0]
            if dirty and value is not None and is_tombstone(json_loads(value)):
                return False
            if dirty and value is not None:
                # An unflushed write-behind lineage is the session every read here serves (DynamoDB's copy is
                # older): end it as write-behind does, checked against that version, a dirty tombstone the
                # flusher applies (it runs in every mode until the dirty set is empty).
                answered, result = self._try_redis(
                    lambda: redis_session_tombstone(
                        phone=phone, expected_version=expected_version, kind=kind, mark_dirty=True
                    )
                )
                if answered and result is not None and result < 0:
                    raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
                if answered and result == 1:
                    return True
        return self._retire_through(phone, expected_version, kind, bypassing=False)

    def _retire_through(self, phone: str, expected_version: int | None, kind: str, *, bypassing: bool) -> bool:
        """DynamoDB (the store of record) checks the version, then Redis gets a tombstone (a conflict
        drops the clean hot copy, which may be the stale one the operator saw). ``bypassing``: write-behind
        could not reach its Redis lineage first, so the end is registered even when Redis answers the
        tombstone: the script keeps a live value above the leftover, which may be that older dirty lineage."""
        try:
            leftover = self.dynamodb.retire(phone, expected_version=expected_version, kind=kind)
        except SessionConflict:
            self._forget_clean(phone)
            raise
        if leftover is None:
            # a stale copy of a gone session; a tombstone stays (write-behind asks DynamoDB over a flushed one)
            self._forget_clean(phone, keep_tombstone=True)
            return False
        answered, result = self._try_redis(
            # a lifetime started since the DynamoDB end (another process, stamped above the leftover) stays
            lambda: redis_session_tombstone(phone=phone, kind=kind, floor_version=leftover, keep_started_after=True)
        )
        if not answered or bypassing:
            self._bypass(phone, leftover)
        # Redis holds a tombstone at or above the leftover (an unflushed write-behind end, say): the session was
        # ended already, and DynamoDB's live copy an older one. Every read here said "no session": no end (404).
        return not (answered and result == ENDED_ALREADY)
