"""``parallel`` (seed 000 phase 2): Redis is still the store of record; DynamoDB gets every write as a
mirror that never moves backwards; a sample of reads is compared (shadow reads) before cutover."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import ConditionFailed, DynamoDBError, dynamodb_get_item, dynamodb_put_item, dynamodb_scan
from lizzy.errors import ServiceUnavailable
from lizzy.phone import hash_phone, mask_phone
from lizzy.redis import (
    DIVERGENCE_KEY,
    TOMBSTONE,
    RedisUnavailable,
    is_tombstone,
    json_dumps,
    json_loads,
    phone_from_session_key,
    redis_ping,
    redis_session_get,
    redis_session_keys,
    redis_session_set_if_newer,
    redis_session_tombstone,
    redis_window_add,
    redis_window_count,
    redis_window_latest,
)
from sessions_app.services.store.base import RetiringSessionStore, Session, SessionConflict, session_conflict
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore, dynamodb_mirror
from sessions_app.services.store.redis_only import RedisSessionStore, canonical, redis_document, session_from_redis

logger = logging.getLogger(__name__)

DIVERGENCE_SAMPLES = 20


class ParallelSessionStore(RetiringSessionStore):
    def __init__(self, redis_store: RedisSessionStore, dynamodb_store: DynamoDBSessionStore) -> None:
        self.redis = redis_store
        self.dynamodb = dynamodb_store

    def load(self, phone: str) -> Session | None:
        try:
            found, ended_at = self.redis.peek(phone)
        except RedisUnavailable:
            metrics.SESSION_FALLBACKS.labels("parallel", "redis_error").inc()
            return self.dynamodb.load(phone)
        if found is None and ended_at:
            # A tombstone: Redis, the store of record, ended the session. DynamoDB's copy may still be live
            # (the delete's mirror write failed): falling back to it would bring the session back.
            return None
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
        floor = self._create_floor(session) if expected_version is None else 0
        try:
            stored = self.redis.save(session, expected_version=expected_version, version_floor=floor)
        except SessionConflict:
            # Not in Redis (expired there, or written during cutover): DynamoDB decides.
            if expected_version is None or self.redis.load(session.phone) is not None:
                raise
            stored = self.dynamodb.save(session, expected_version=expected_version)
            redis_session_set_if_newer(phone=stored.phone, document=redis_document(stored), expire_at=stored.ttl)
            return stored
        dynamodb_mirror(self.dynamodb, stored)
        return stored

    def _create_floor(self, session: Session) -> int:
        """The version a create starts above. Redis knows when it holds the phone (a live copy: the CAS
        refuses the create; a tombstone: the CAS stamps above it). When it holds nothing, DynamoDB may:
        a live session Redis lost (which ``load`` serves, so a create is refused as there) or an earlier
        lifetime's leftover, which the new lifetime's versions must stay above (issue 13: an expired
        leftover is never "newer" than a live session). Creates only (a Redis GET and a DynamoDB GetItem
        more); a turn's save is unchanged."""
        found, floor = self.redis.peek(session.phone)
        if found is not None or floor:
            return floor
        # DynamoDB unreachable raises, as ``load`` does on a Redis miss: whether a session exists is unknown.
        durable, floor = self.dynamodb.load_with_floor(session.phone)
        if durable is not None:
            raise session_conflict(session, None)
        return floor

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        """Redis, the store of record, ends its live copy (conditionally on ``expected_version``), then DynamoDB's
        mirror follows (a failure is counted: the tombstone decides, ``load`` never falls back past it).

        A session Redis lacks (only DynamoDB had it, and ``load`` served it from there) is ended by DynamoDB,
        conditionally, and then gets a Redis tombstone at the leftover's version all the same, lasting a session's
        lifetime: so every end is in Redis. A late write of the old copy (a cutover process's mirror in flight, a
        fill) loses to it, and the rollback to ``redis_only`` needs none of DynamoDB's ends, whose ``lastActivity``
        seconds could not tell a lifetime Redis restarted from an older one. Redis unreachable: the first call
        raises (503), so no end reaches DynamoDB alone that way."""
        end_in_redis = self.redis.delete if kind == "deleted" else self.redis.expire
        if end_in_redis(phone, expected_version=expected_version):
            try:
                self.dynamodb.retire(phone, expected_version=None, kind=kind)
            except (DynamoDBError, ServiceUnavailable) as exc:
                metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
            return True
        if self.redis.peek(phone)[1]:
            return False  # a tombstone: Redis ended the session; DynamoDB's copy is a mirror write that failed
        leftover = self.dynamodb.retire(phone, expected_version=expected_version, kind=kind)
        if leftover is None:
            return False
        try:
            # Conditional (session_tombstone.lua): a Redis copy above the leftover (a new lifetime) stays.
            redis_session_tombstone(
                phone=phone,
                kind=kind,
                floor_version=leftover,
                lifetime_seconds=self.redis.tombstone_seconds(),
                keep_later=True,
            )
        except RedisUnavailable as exc:
            # DynamoDB's end stands (parallel reads it on a Redis miss); only a late older copy could undo it.
            metrics.SESSION_MIRROR_ERRORS.labels("redis", exc.code).inc()
            logger.warning("Redis tombstone write failed for %s: %s", mask_phone(phone), exc.code)
        return True


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


# --- Changing which store is the store of record (store_modes.store_of_record_revalidate) --------------

SCAN_PAGE = 500  # items per Scan page while revalidating: bounded memory, one page in flight


def _dynamodb_sessions() -> Any:
    """Every session item (live, expired or a delete's leftover), one Scan page at a time."""
    store = DynamoDBSessionStore()
    start_key = None
    while True:
        page = dynamodb_scan(table=store.table, limit=SCAN_PAGE, start_key=start_key, consistent=True)
        yield from page.items
        start_key = page.last_key
        if not start_key:
            return


def _written_at(document: dict[str, Any]) -> dt.datetime | None:
    """When a document was last written (its ``lastActivity``, whole seconds), None when unreadable."""
    try:
        stamped = dt.datetime.fromisoformat(document.get("lastActivity") or "")
    except (TypeError, ValueError):
        return None
    return stamped if stamped.tzinfo else stamped.replace(tzinfo=dt.UTC)


def _written_after(later: dt.datetime | None, earlier: dt.datetime | None) -> bool:
    """``later`` is not before ``earlier`` (unknown times compare as "may be")."""
    return later is None or earlier is None or later >= earlier


def redis_catch_up_from_dynamodb(*, carry_ends: bool) -> int:
    """Back to Redis as the store of record (cutover → parallel, parallel → redis_only): DynamoDB may hold
    versions Redis never got (a Redis mirror write that failed in cutover; a session only DynamoDB had,
    which parallel read on a Redis miss and redis_only cannot). Each newer live item is written into Redis
    ("set if newer"); with ``carry_ends``, each newer delete or expiry becomes a tombstone over the older live
    copy (a CAS on that copy's version). Never replaces a newer Redis version, nor a Redis copy written after
    the DynamoDB item's lifetime (a lifetime Redis started after losing its keys restarts its versions low).
    Returns how many phones were changed. Raises ``RedisUnavailable``/``DynamoDBError``: the caller refuses the
    change.

    ``carry_ends`` is for cutover → parallel only (a cutover end whose Redis tombstone write failed). In
    parallel every end is in Redis: Redis ends its copy first, and an end of a session Redis lacked leaves a
    tombstone too (``ParallelSessionStore._retire``); writes fail while Redis is away. DynamoDB's other ends
    are the copies entering parallel retired and lifetimes that ended by time, so ending a live Redis copy
    from one could only take a lifetime Redis restarted after losing its keys and wrote in the same second
    (``lastActivity`` has whole seconds: the history checker's seed 102 at 400 steps)."""
    changed = 0
    for item in _dynamodb_sessions():
        found = Session.from_document(item)
        there = redis_session_get(phone=found.phone)
        live_there = there is not None and not is_tombstone(there)
        if live_there and int(there.get("version", 0)) >= found.version:
            continue
        if not found.is_expired():
            if live_there and not _written_after(_written_at(item), _written_at(there)):
                continue
            changed += redis_session_set_if_newer(
                phone=found.phone, document=redis_document(found), expire_at=found.ttl
            )
            continue
        if not live_there or not carry_ends:
            continue  # nothing live in Redis to end, or no end Redis lacks
        # When DynamoDB's lifetime was last written. A delete's leftover has only ``ttl`` (= the delete). An
        # expired item keeps its ``lastActivity``: its ``ttl`` may date the end later than a lifetime Redis
        # started since (Redis lost its keys, versions restarted): the item's natural expiry, or the expire
        # with which entering parallel retired this stale copy a moment ago (dynamodb_retire_stale_mirrors).
        if "lastActivity" in item:
            ended_at = _written_at(item)
        else:
            ended_at = dt.datetime.fromtimestamp(found.ttl or 0, tz=dt.UTC)
        if not _written_after(ended_at, _written_at(there)):
            continue  # Redis's copy was written after DynamoDB's lifetime: a later lifetime
        kind = "expired" if "sessionData" in item else "deleted"  # a delete's leftover has no content
        result = redis_session_tombstone(
            phone=found.phone, expected_version=int(there["version"]), kind=kind, floor_version=found.version
        )
        changed += result == 1
    return changed


def dynamodb_catch_up_from_redis() -> int:
    """Into cutover (DynamoDB becomes the store of record): Redis, the store of record in parallel, may hold
    versions DynamoDB never got: a turn, delete or expiry acknowledged from Redis whose DynamoDB mirror write
    failed (``dynamodb_mirror`` counts it and goes on). Each newer live Redis copy is written into DynamoDB
    conditionally on exactly the item read, before Redis was (never over a write made since); each newer
    tombstone ends DynamoDB's older live copy (conditionally on that copy's version). One GetItem per Redis
    session. Returns how many phones were changed. Raises ``RedisUnavailable``/``DynamoDBError``: the caller
    refuses the change."""
    store = DynamoDBSessionStore()
    changed, cursor = 0, 0
    while True:
        cursor, names = redis_session_keys(cursor=cursor)
        for name in names:
            phone = phone_from_session_key(name)
            # DynamoDB first, then Redis: an end by a process already in cutover lands in DynamoDB, then in Redis
            # (a tombstone). Read the other way round, a Redis copy read before such an end, with the end's
            # leftover read after it, would look like a turn DynamoDB missed and bring the session back.
            item = dynamodb_get_item(table=store.table, key={"phone": phone}, consistent=True)
            there = redis_session_get(phone=phone)
            if there is None:
                continue  # expired since the SCAN saw it
            version = int(there.get("version", 0))
            current = None if item is None else Session.from_document(item)
            live = current is not None and not current.is_expired()
            if live and current.version >= version:
                continue
            if is_tombstone(there):
                if not live:
                    continue  # nothing live in DynamoDB to end
                try:
                    ended = store.retire(phone, expected_version=current.version, kind=str(there[TOMBSTONE]))
                except SessionConflict:
                    continue  # written meanwhile: that write is newer than this comparison
                changed += ended is not None
                continue
            session = session_from_redis(there)
            # Conditional on exactly the item read (absent, or that version): an end or a turn written since
            # (after this look at Redis) is newer than this comparison and wins.
            if current is None:
                condition, names, values = "attribute_not_exists(#phone)", {"#phone": "phone"}, None
            else:
                condition, names, values = "#v = :read", {"#v": "version"}, {":read": current.version}
            try:
                dynamodb_put_item(
                    table=store.table, item=session.to_document(), condition=condition, names=names, values=values
                )
            except ConditionFailed:
                continue
            changed += 1
        if cursor == 0:
            return changed


def dynamodb_retire_stale_mirrors() -> int:
    """Entering parallel from redis_only: DynamoDB may hold copies from an earlier parallel or cutover
    period, older than Redis (the store of record in redis_only, whose versions restart after a Redis
    loss). Parallel reads DynamoDB on a Redis miss and prefers its copy when its version is higher, so
    each live item Redis does not hold at that very version is expired (conditionally on its version:
    a mirror write made meanwhile wins). Returns how many were expired. Raises like the calls it makes, and
    ``RedisUnavailable`` when Redis, the store of record, cannot be reached even if no item needs asking it
    (in parallel every read would then fall back to DynamoDB, which holds none of redis_only's sessions yet)."""
    redis_ping()
    store = DynamoDBSessionStore()
    expired = 0
    for item in _dynamodb_sessions():
        found = Session.from_document(item)
        if found.is_expired():
            continue
        there = redis_session_get(phone=found.phone)
        if there is not None and not is_tombstone(there) and int(there.get("version", 0)) == found.version:
            continue
        try:
            expired += store.expire(found.phone, expected_version=found.version)
        except SessionConflict:
            continue
    return expired
