"""Session store modes: which store sessions live in, how the mode changes, and the guards.

The mode is one database row, so the admin and ``manage.py session_store_mode`` change it for every
web and worker process at once; each process caches it for ``LIZZY_MODE_CACHE_SECONDS`` so a request
costs no database query, and follows a change within that many seconds.

Forward moves follow seed 000's phases one step at a time (redis_only → parallel → cutover →
dynamodb_only), then seed 001's hot tier (→ cached → cached_write_behind). A rollback is one step back
and needs a reason. Two guards protect data: entering cutover while shadow reads saw divergences in the
last window, and dropping the hot tier while write-behind sessions are still unflushed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from rest_framework import status

from lizzy.dynamodb import DynamoDBError
from lizzy.errors import ApplicationError, ServiceUnavailable
from lizzy.redis import RedisUnavailable, phone_from_session_key, redis_session_forget_clean, redis_session_keys
from sessions_app.models import SessionStoreModeChange, SessionStoreSetting, StoreMode
from sessions_app.services.store.parallel import (
    dynamodb_catch_up_from_redis,
    dynamodb_retire_stale_mirrors,
    redis_catch_up_from_dynamodb,
    shadow_read_stats,
)
from sessions_app.services.store.write_behind import flush_backlog

logger = logging.getLogger(__name__)

MODE_ORDER: tuple[str, ...] = (
    StoreMode.REDIS_ONLY,
    StoreMode.PARALLEL,
    StoreMode.CUTOVER,
    StoreMode.DYNAMODB_ONLY,
    StoreMode.CACHED,
    StoreMode.CACHED_WRITE_BEHIND,
)
REDIS_MODES = frozenset(
    {StoreMode.REDIS_ONLY, StoreMode.PARALLEL, StoreMode.CUTOVER, StoreMode.CACHED, StoreMode.CACHED_WRITE_BEHIND}
)

ERR_UNKNOWN_MODE = "{mode!r} is not a session store mode; choose one of: {choices}."
ERR_SAME_MODE = "The session store is already in {mode}."
ERR_SKIP = "{current} → {target} skips a phase; move one step at a time: {current} → {next}."
ERR_ROLLBACK_REASON = "Moving back from {current} to {target} is a rollback and needs a reason."
ERR_FORCE_REASON = "Forcing a mode change needs a reason."
ERR_DIVERGENCES = (
    "Refusing {current} → {target}: shadow reads found {count} divergence(s) in the last {window} s. "
    "Investigate them (`session_store_mode` prints samples) or force with a reason."
)
ERR_SHADOW_UNKNOWN = (
    "Refusing {current} → {target}: cannot read the shadow-read counts ({reason}). Force with a reason."
)
ERR_BACKLOG = (
    "Refusing {current} → {target}: {count} write-behind session(s) are not yet in DynamoDB. "
    "Wait for the flusher (or run it) and try again, or force with a reason."
)
ERR_BACKLOG_UNKNOWN = "Refusing {current} → {target}: cannot read the write-behind backlog ({reason})."


class ModeChangeRefused(ApplicationError):
    code = "mode_change_refused"
    http_status = status.HTTP_409_CONFLICT


class UnknownMode(ApplicationError):
    code = "unknown_mode"


@dataclass(frozen=True)
class ModeState:
    mode: str
    changed_at: object | None
    changed_by: str
    reason: str


_cache_lock = threading.Lock()
_cached: tuple[str, float] | None = None


def store_mode_current() -> str:
    """The mode this process follows: pinned by setting, else the database row, cached briefly."""
    global _cached
    if settings.LIZZY_SESSION_STORE_MODE:
        return settings.LIZZY_SESSION_STORE_MODE
    now = time.monotonic()
    cached = _cached
    if cached and cached[1] > now:
        return cached[0]
    with _cache_lock:
        try:
            row = SessionStoreSetting.objects.filter(pk=1).values_list("mode", flat=True).first()
        except DatabaseError:
            # The database is away: keep following the last mode we knew rather than failing SMS turns.
            logger.warning("cannot read the session store mode; keeping %s", cached[0] if cached else "the default")
            row = cached[0] if cached else None
        mode = row or settings.LIZZY_SESSION_STORE_DEFAULT_MODE
        _cached = (mode, now + settings.LIZZY_MODE_CACHE_SECONDS)
    return mode


def store_mode_forget_cache() -> None:
    global _cached
    with _cache_lock:
        _cached = None


def store_mode_get() -> ModeState:
    row = SessionStoreSetting.objects.filter(pk=1).first()
    if row is None:
        return ModeState(settings.LIZZY_SESSION_STORE_DEFAULT_MODE, None, "default", "")
    return ModeState(row.mode, row.changed_at, row.changed_by, row.reason)


def store_mode_history(*, limit: int = 20) -> list[SessionStoreModeChange]:
    return list(SessionStoreModeChange.objects.all()[:limit])


def store_mode_check_transition(*, current: str, target: str, reason: str, force: bool) -> None:
    """Raise ``ModeChangeRefused`` (or ``UnknownMode``) unless ``current → target`` is allowed now."""
    if target not in MODE_ORDER:
        raise UnknownMode(ERR_UNKNOWN_MODE.format(mode=target, choices=", ".join(MODE_ORDER)))
    if target == current:
        raise ModeChangeRefused(ERR_SAME_MODE.format(mode=current))
    reason = (reason or "").strip()
    if force and not reason:
        raise ModeChangeRefused(ERR_FORCE_REASON)
    here, there = MODE_ORDER.index(current), MODE_ORDER.index(target)
    if abs(there - here) != 1:
        step = MODE_ORDER[here + (1 if there > here else -1)]
        raise ModeChangeRefused(ERR_SKIP.format(current=current, target=target, next=step))
    if there < here and not reason:
        raise ModeChangeRefused(ERR_ROLLBACK_REASON.format(current=current, target=target))
    if force:
        return
    if current == StoreMode.PARALLEL and target == StoreMode.CUTOVER:
        _check_no_divergences(current, target)
    if current in (StoreMode.CACHED, StoreMode.CACHED_WRITE_BEHIND) and target != StoreMode.CACHED_WRITE_BEHIND:
        # Leaving write-behind (or the hot tier altogether) must not strand unflushed turns: in `cached`
        # a write-through conflict would meet them, in `dynamodb_only` nobody flushes them.
        _check_no_backlog(current, target)


def _check_no_divergences(current: str, target: str) -> None:
    try:
        stats = shadow_read_stats()
    except RedisUnavailable as exc:
        raise ModeChangeRefused(ERR_SHADOW_UNKNOWN.format(current=current, target=target, reason=exc.message)) from exc
    if stats["divergences"]:
        raise ModeChangeRefused(
            ERR_DIVERGENCES.format(
                current=current, target=target, count=stats["divergences"], window=stats["window_seconds"]
            ),
            details=stats,
        )


def _check_no_backlog(current: str, target: str) -> None:
    try:
        backlog = flush_backlog()
    except RedisUnavailable as exc:
        raise ModeChangeRefused(ERR_BACKLOG_UNKNOWN.format(current=current, target=target, reason=exc.message)) from exc
    if backlog.size:
        raise ModeChangeRefused(ERR_BACKLOG.format(current=current, target=target, count=backlog.size))


def store_mode_set(*, mode: str, actor: str, reason: str = "", force: bool = False) -> SessionStoreModeChange:
    """Change the mode for every process (within LIZZY_MODE_CACHE_SECONDS), recording who, when and why.

    Leaving ``dynamodb_only`` for a mode that reads Redis revalidates the hot tier: every clean copy is
    dropped before the change (refused, unless forced, when Redis cannot be reached) and once more when
    every process follows the new mode (``hot_tier_revalidate``). Moving the store of record between
    Redis and DynamoDB in seed 000's phases revalidates the other store (``store_of_record_revalidate``).
    """
    reason = (reason or "").strip()
    with transaction.atomic():
        row = SessionStoreSetting.objects.select_for_update().filter(pk=1).first()
        current = row.mode if row else settings.LIZZY_SESSION_STORE_DEFAULT_MODE
        store_mode_check_transition(current=current, target=mode, reason=reason, force=force)
        hot_tier_revalidate(current=current, target=mode, force=force, phase="before")
        store_of_record_revalidate(current=current, target=mode, force=force, phase="before")
        now = timezone.now()
        SessionStoreSetting.objects.update_or_create(
            pk=1, defaults={"mode": mode, "changed_at": now, "changed_by": actor, "reason": reason}
        )
        change = SessionStoreModeChange.objects.create(
            from_mode=current, to_mode=mode, changed_at=now, changed_by=actor, reason=reason, forced=force
        )
    store_mode_forget_cache()
    logger.info("session store mode %s -> %s by %s%s", current, mode, actor, " (forced)" if force else "")
    hot_tier_revalidate(current=current, target=mode, force=force, phase="after")
    store_of_record_revalidate(current=current, target=mode, force=force, phase="after")
    return change


ERR_REVALIDATE = (
    "Refusing {current} → {target}: the Redis copies written before {current} must be dropped first, and "
    "Redis cannot be reached ({reason}). Try again when it is back, or force with a reason."
)


def hot_tier_revalidate(*, current: str, target: str, force: bool, phase: str) -> int:
    """Leaving ``dynamodb_only`` (to ``cached``, or back to ``cutover``): Redis copies written before it
    are older than DynamoDB, or of sessions deleted since. ``before`` the change every clean copy is
    dropped (``ModeChangeRefused`` when Redis is away, unless forced); ``after`` it, once every process
    follows the new mode (LIZZY_MODE_CACHE_SECONDS: until then processes still in ``dynamodb_only``
    write DynamoDB alone), once more. Dirty copies are never dropped (none exist in these modes)."""
    if current != StoreMode.DYNAMODB_ONLY or target not in REDIS_MODES:
        return 0
    if phase == "after":
        time.sleep(settings.LIZZY_MODE_CACHE_SECONDS + 0.05)
    try:
        removed = hot_tier_purge()
    except RedisUnavailable as exc:
        if phase == "before" and not force:
            raise ModeChangeRefused(ERR_REVALIDATE.format(current=current, target=target, reason=exc.message)) from exc
        # Each copy left is at worst a stale read that a conditional write refuses (DynamoDB checks the
        # version); logged so the operator can purge from the console.
        logger.warning("could not revalidate the hot tier after %s -> %s: Redis is away", current, target)
        return 0
    logger.info("hot tier revalidation (%s %s -> %s): %s copies dropped", phase, current, target, removed)
    return removed


def hot_tier_purge() -> int:
    """Drop every clean Redis session copy (SCAN, never KEYS); dirty copies are kept. Returns the count."""
    removed = 0
    cursor = 0
    while True:
        cursor, keys = redis_session_keys(phone_prefix="", cursor=cursor, count=500)
        for name in keys:
            removed += redis_session_forget_clean(phone=phone_from_session_key(name)) == 1
        if cursor == 0:
            return removed


ERR_STORE_OF_RECORD = (
    "Refusing {current} → {target}: {what} first, and a store cannot be reached ({reason}). Try again when "
    "both answer, or force with a reason."
)
# (current, target) → what must happen before Redis is the store of record (again): see the function.
_RECORD_CHANGES = {
    (StoreMode.PARALLEL, StoreMode.CUTOVER): "DynamoDB must catch up with Redis's newer sessions",
    (StoreMode.CUTOVER, StoreMode.PARALLEL): "Redis must catch up with DynamoDB's newer sessions",
    (StoreMode.PARALLEL, StoreMode.REDIS_ONLY): "Redis must catch up with DynamoDB's newer sessions",
    (StoreMode.REDIS_ONLY, StoreMode.PARALLEL): "DynamoDB's copies older than Redis must be expired",
}


def store_of_record_revalidate(*, current: str, target: str, force: bool, phase: str) -> int:
    """Seed 000's phases move the store of record; the store that becomes it again may be behind.

    ``cutover → parallel`` and ``parallel → redis_only`` (rollbacks): DynamoDB holds versions Redis lacks
    (a failed Redis mirror write in cutover; sessions only DynamoDB had, which parallel served on a Redis
    miss and redis_only would not see), so Redis catches up: newer items are copied and, from cutover, newer
    deletes and expiries become tombstones (in parallel every end left one in Redis), before the change and
    once more when every process follows it.
    ``parallel → cutover``: Redis, the store of record until now, holds what a failed DynamoDB mirror write
    missed (the turn was acknowledged): DynamoDB catches up, before the change and once more when every
    process follows it (a process still in parallel during the mode cache may have mirrored nothing).
    ``redis_only → parallel``: DynamoDB's live copies that Redis does not hold at the same version are
    leftovers of an earlier period, which parallel's fallback and shadow reads would prefer; they are
    expired, before the change (processes in redis_only never write DynamoDB). Refused, unless forced,
    when a store cannot be reached before the change; logged after it. Returns how many were changed.
    """
    what = _RECORD_CHANGES.get((current, target))
    if what is None or (phase == "after" and current == StoreMode.REDIS_ONLY):
        return 0
    if phase == "after":
        time.sleep(settings.LIZZY_MODE_CACHE_SECONDS + 0.05)
    try:
        if target == StoreMode.PARALLEL and current == StoreMode.REDIS_ONLY:
            changed = dynamodb_retire_stale_mirrors()
        elif target == StoreMode.CUTOVER:
            changed = dynamodb_catch_up_from_redis()
        else:
            changed = redis_catch_up_from_dynamodb(carry_ends=current == StoreMode.CUTOVER)
    except (DynamoDBError, ServiceUnavailable) as exc:
        reason = getattr(exc, "message", str(exc))
        if phase == "before" and not force:
            raise ModeChangeRefused(
                ERR_STORE_OF_RECORD.format(current=current, target=target, what=what, reason=reason)
            ) from exc
        logger.warning("store of record revalidation (%s %s -> %s) failed: %s", phase, current, target, reason)
        return 0
    logger.info("store of record revalidation (%s %s -> %s): %s sessions changed", phase, current, target, changed)
    return changed
