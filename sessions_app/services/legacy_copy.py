"""Copy the legacy Redis sessions (``lizzy:session:{phone}``) into DynamoDB, and verify the copy.

SCAN with a cursor, never KEYS (KEYS blocks a production Redis). Each key's remaining PTTL becomes
the item's ``ttl``, so a copied session expires when it would have in Redis. A key that expires
between SCAN and GET is skipped and counted. The PutItem is conditional on the DynamoDB copy being
absent, expired or older (``version``), so a session written in DynamoDB meanwhile (parallel/cutover) is never
overwritten by the older snapshot. The SCAN cursor is saved in Redis after every page, so an
interrupted copy resumes where it stopped (and re-copying a page is harmless: equal versions are skipped).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import ConditionFailed, dynamodb_batch_get, dynamodb_put_item
from lizzy.phone import hash_phone
from lizzy.redis import (
    MIGRATE_CURSOR_KEY,
    is_tombstone,
    json_loads,
    phone_from_session_key,
    redis_delete,
    redis_get_json,
    redis_scan_sessions,
    redis_set_json,
    redis_values_with_pttl,
)
from lizzy.tables import SESSIONS
from sessions_app.services.store.base import Session
from sessions_app.services.store.redis_only import canonical

SCAN_COUNT = 500
SAMPLE_LIMIT = 20


@dataclass
class CopyResult:
    scanned: int = 0
    copied: int = 0
    skipped_expired: int = 0
    skipped_newer: int = 0
    invalid: int = 0
    resumed_from: int = 0


@dataclass
class VerifyResult:
    checked: int = 0
    missing: int = 0
    different: int = 0
    ttl_mismatch: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.different or self.ttl_mismatch)


def _ttl_from_pttl(pttl_ms: int, now: float) -> int:
    if pttl_ms == -1:  # no expiry in Redis: give it the normal session lifetime
        return int(now) + settings.LIZZY_SESSION_TTL_SECONDS
    return math.ceil(now + pttl_ms / 1000)


def sessions_migrate_from_redis(
    *,
    redis_url: str | None = None,
    restart: bool = False,
    scan_count: int = SCAN_COUNT,
    on_page: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy every legacy session; resumable from the saved SCAN cursor unless ``restart``."""
    result = CopyResult()
    if restart:
        redis_delete(name=MIGRATE_CURSOR_KEY, url=redis_url)
    # The cursor lives in the source Redis: it belongs to that server's SCAN.
    cursor = int(redis_get_json(name=MIGRATE_CURSOR_KEY, url=redis_url) or 0)
    result.resumed_from = cursor
    while True:
        cursor, keys = redis_scan_sessions(url=redis_url, cursor=cursor, count=scan_count)
        if keys:
            _copy_page(redis_url, keys, result)
        if on_page:
            on_page(len(keys))
        if cursor == 0:
            redis_delete(name=MIGRATE_CURSOR_KEY, url=redis_url)
            return result
        redis_set_json(name=MIGRATE_CURSOR_KEY, value=cursor, ttl_seconds=7 * 24 * 3600, url=redis_url)


def _copy_page(redis_url: str | None, keys: list[str], result: CopyResult) -> None:
    now = time.time()
    for name, (value, pttl) in zip(keys, redis_values_with_pttl(url=redis_url, keys=keys), strict=True):
        result.scanned += 1
        if value is None or pttl == -2:
            result.skipped_expired += 1
            continue
        try:
            document = json_loads(value)
            if is_tombstone(document):  # a deleted session: nothing to copy
                result.skipped_expired += 1
                continue
            document.setdefault("phone", phone_from_session_key(name))
            document["version"] = int(document.get("version", 0))
        except (ValueError, TypeError, AttributeError):
            result.invalid += 1
            continue
        document["ttl"] = _ttl_from_pttl(pttl, now)
        try:
            dynamodb_put_item(
                table=SESSIONS.name,
                item=document,
                # An expired leftover is no session (DynamoDB sweeps it days later): it never counts as newer.
                condition="attribute_not_exists(#phone) OR #ttl <= :now OR #v < :v",
                names={"#phone": "phone", "#v": "version", "#ttl": "ttl"},
                values={":v": document["version"], ":now": int(now)},
            )
        except ConditionFailed:
            result.skipped_newer += 1
            continue
        result.copied += 1


def sessions_verify_copy(
    *, redis_url: str | None = None, ttl_tolerance_seconds: int = 5, scan_count: int = SCAN_COUNT
) -> VerifyResult:
    """Compare every Redis session with DynamoDB: missing, different document, TTL beyond tolerance."""
    result = VerifyResult()
    cursor = 0
    while True:
        cursor, keys = redis_scan_sessions(url=redis_url, cursor=cursor, count=scan_count)
        if keys:
            _verify_page(redis_url, keys, ttl_tolerance_seconds, result)
        if cursor == 0:
            return result


def _verify_page(redis_url: str | None, keys: list[str], tolerance: int, result: VerifyResult) -> None:
    now = time.time()
    live: dict[str, tuple[dict[str, Any], int]] = {}
    for name, (value, pttl) in zip(keys, redis_values_with_pttl(url=redis_url, keys=keys), strict=True):
        if value is None or pttl == -2:
            continue
        phone = phone_from_session_key(name)
        document = json_loads(value)
        if is_tombstone(document):
            continue
        document.setdefault("phone", phone)
        live[phone] = (document, _ttl_from_pttl(pttl, now))
    durable = {
        item["phone"]: item
        for item in dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": p} for p in live], consistent=True)
    }
    for phone, (document, ttl) in live.items():
        result.checked += 1
        item = durable.get(phone)
        problem = None
        if item is None:
            result.missing += 1
            problem = "missing"
        elif canonical(Session.from_document(item)) != canonical(Session.from_document(document)):
            result.different += 1
            problem = "different"
        elif abs(int(item.get("ttl", 0)) - ttl) > tolerance:
            result.ttl_mismatch += 1
            problem = "ttl"
        if problem and len(result.samples) < SAMPLE_LIMIT:
            result.samples.append({"phoneHash": hash_phone(phone), "problem": problem})
