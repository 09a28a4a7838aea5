"""Entries of the DynamoDB cache table (seed 003's ``LizzyCache``) for the ops console: list, invalidate.

Keys are shown as Django builds them (``KEY_PREFIX:version:key``; a long key by the whole key its item
keeps, not its hashed partition key), passed through the log redaction so a phone number or e-mail
address someone put in a cache key is never displayed in clear. Values are never deserialized here:
the page shows sizes, not contents, so a pickled value is only ever unpickled by the backend after
its signature verified.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lizzy.cache_backend import CACHE_TABLE, PK_PREFIX, SK_DATA, cache_pk
from lizzy.cache_backend.items import full_key_of
from lizzy.dynamodb import (
    ConditionFailed,
    decode_cursor,
    dynamodb_batch_write,
    dynamodb_delete_item,
    dynamodb_scan,
    dynamodb_scan_segment,
    encode_cursor,
    item_size,
)
from lizzy.errors import ApplicationError
from lizzy.observability.logs import redact

ERR_EMPTY_PREFIX = "Give a key prefix to invalidate many cache entries at once (the whole cache is not a prefix)."
ERR_NO_KEY = "Which cache entry? The request named none."


class CacheEntryRefused(ApplicationError):
    code = "cache_entry_refused"


@dataclass(frozen=True)
class CacheEntry:
    key: str  # the cache key (without the CACHE# prefix; a hashed item's whole key)
    display_key: str
    ttl_seconds: int | None  # None: never expires; <= 0: expired, DynamoDB has not removed it yet
    size_bytes: int
    last_write: str | None  # createdAt: the backend rewrites the item on every set


def _display(key: str) -> str:
    return redact(key)


def _ttl_seconds(ttl: Any, now: float) -> int | None:
    """Seconds left; None: never expires. A ttl that is not a number (the attribute is unsigned, someone
    rewrote it) is shown as expired: the cache never serves such an item and DynamoDB's TTL never deletes it."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float, Decimal)):
        return 0
    return int(int(ttl) - now)


def cache_entries_page(
    *, prefix: str = "", cursor: str | None = None, limit: int = 50
) -> tuple[list[CacheEntry], str | None]:
    """One page of cache items (a filtered Scan), resuming from an opaque cursor."""
    now = time.time()
    names = {"#pk": "PK", "#sk": "SK"}
    values = {":prefix": PK_PREFIX + prefix, ":sk": SK_DATA}
    start_key = decode_cursor(cursor)
    entries: list[CacheEntry] = []
    while True:
        page = dynamodb_scan(
            table=CACHE_TABLE.name,
            filter_expression="begins_with(#pk, :prefix) AND #sk = :sk",
            names=names,
            values=values,
            start_key=start_key,
            limit=max(limit, 100),
        )
        for item in page.items:
            key = full_key_of(item)
            ttl = item.get("ttl")
            entries.append(
                CacheEntry(
                    key=key,
                    display_key=_display(key),
                    ttl_seconds=_ttl_seconds(ttl, now),
                    size_bytes=item_size(item),
                    last_write=item.get("createdAt"),
                )
            )
            if len(entries) == limit:
                more = page.last_key is not None or item is not page.items[-1]
                return entries, encode_cursor({"PK": item["PK"], "SK": item["SK"]}) if more else None
        if not page.last_key:
            return entries, None
        start_key = page.last_key


def cache_entry_invalidate(*, key: str) -> bool:
    """Delete one cache item by its full key; False when it was not there."""
    if not key:
        raise CacheEntryRefused(ERR_NO_KEY)
    try:
        dynamodb_delete_item(
            table=CACHE_TABLE.name,
            key={"PK": cache_pk(key), "SK": SK_DATA},
            condition="attribute_exists(#pk)",
            names={"#pk": "PK"},
        )
    except ConditionFailed:
        return False
    return True


def cache_entries_invalidate_prefix(*, prefix: str) -> int:
    """Delete every cache item whose key starts with ``prefix`` (Scan, then BatchWriteItem 25 at a time)."""
    if not prefix:
        raise CacheEntryRefused(ERR_EMPTY_PREFIX)
    keys = [
        {"PK": item["PK"], "SK": item["SK"]}
        for item in dynamodb_scan_segment(
            table=CACHE_TABLE.name,
            filter_expression="begins_with(PK, :prefix) AND SK = :sk",
            values={":prefix": PK_PREFIX + prefix, ":sk": SK_DATA},
        )
    ]
    if keys:
        dynamodb_batch_write(table=CACHE_TABLE.name, delete_keys=keys, key_names=("PK", "SK"))
    return len(keys)
