"""Invalidating Redis copies of sessions from the ops console (one phone, or every phone with a prefix).

Only where Redis is a copy: in ``redis_only`` and ``parallel`` it is the store of record, and
dropping a key there deletes a customer's conversation, so it is refused. A copy holding write-behind
writes not yet in DynamoDB is kept (the check and the delete are one Lua script): it is the only
place those writes exist. The next read fills the hot tier again from DynamoDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lizzy.errors import ApplicationError
from lizzy.phone import mask_phone
from lizzy.redis import phone_from_session_key, redis_session_forget_clean, redis_session_keys
from sessions_app.models import StoreMode
from sessions_app.services.store_modes import store_mode_current

ERR_STORE_OF_RECORD = (
    "Redis holds the sessions of record in mode {mode}: invalidating would delete live conversations. "
    "Use the live sessions page to expire or delete a session instead."
)
ERR_BAD_PREFIX = "A phone prefix is '+' and digits only (for example +1206); got {prefix!r}."
ERR_DIRTY = "The Redis copy of {phone} has writes not yet flushed to DynamoDB; it was kept. Flush, then try again."
ERR_EMPTY_PREFIX = "Give a phone prefix (at least '+' and one digit) to invalidate many entries at once."
PHONE_PREFIX = re.compile(r"^\+?\d{0,15}$")
SCAN_COUNT = 500  # keys per SCAN call while invalidating a prefix


class CacheInvalidationRefused(ApplicationError):
    code = "cache_invalidation_refused"


@dataclass(frozen=True)
class InvalidationResult:
    removed: int
    kept_dirty: int


def _check_mode() -> None:
    mode = store_mode_current()
    if mode in (StoreMode.REDIS_ONLY, StoreMode.PARALLEL):
        raise CacheInvalidationRefused(ERR_STORE_OF_RECORD.format(mode=mode))


def hot_tier_check_prefix(*, prefix: str) -> str:
    prefix = (prefix or "").strip()
    if not PHONE_PREFIX.match(prefix):
        raise CacheInvalidationRefused(ERR_BAD_PREFIX.format(prefix=prefix[:40]))
    return prefix


def hot_tier_invalidate(*, phone: str) -> bool:
    """Drop the Redis copy of one session; False when there was none. Refuses a dirty copy."""
    _check_mode()
    result = redis_session_forget_clean(phone=phone)
    if result < 0:
        raise CacheInvalidationRefused(ERR_DIRTY.format(phone=mask_phone(phone)))
    return result == 1


def hot_tier_invalidate_prefix(*, prefix: str) -> InvalidationResult:
    """Drop the Redis copy of every session whose phone starts with ``prefix``; dirty copies are kept."""
    prefix = hot_tier_check_prefix(prefix=prefix)
    if len(prefix.lstrip("+")) < 1:
        raise CacheInvalidationRefused(ERR_EMPTY_PREFIX)
    _check_mode()
    removed = kept = 0
    cursor = 0
    while True:
        cursor, keys = redis_session_keys(phone_prefix=prefix, cursor=cursor, count=SCAN_COUNT)
        for name in keys:
            result = redis_session_forget_clean(phone=phone_from_session_key(name))
            removed += result == 1
            kept += result < 0
        if cursor == 0:
            return InvalidationResult(removed=removed, kept_dirty=kept)
