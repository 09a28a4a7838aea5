"""The shared bypass registry: the phones written to DynamoDB while Redis was away, and the versions written.

A process that writes a session through to DynamoDB because Redis is unreachable from it knows that the
Redis copy of that phone, if Redis still holds one, is older than its write; the other processes do not,
and once Redis is back for them they would read that copy (and, in write-behind, build on it). So each
such write is recorded here before it is acknowledged, and:

* a process that saw Redis fail applies the whole registry before it uses Redis again (its recovery);
* every flush run applies it and removes the entries it applied (conditionally: a newer entry stays),
  so a process that never saw Redis fail serves such a copy at most until the next flush run. An entry
  whose phone Redis held no copy of stays until it expires: a cache-aside read that loaded the older
  version from DynamoDB before the write may fill it after that run, and the next run drops it.

Applying an entry drops the Redis copy only if it is older than the write (``session_drop.lua``: a dirty
copy whose base is below it, a clean copy or tombstone below it); a copy written on top of it since stays.

Layout: one item per phone in the cache table (``PK=LIZZY#write-behind-bypass``, ``SK`` = the phone,
``version``, ``ttl``), next to the fence item; read with one strongly consistent Query of that partition
(one round trip per 1 MB page: over 10,000 entries of about 60 bytes). Items rather than one map in one
item: an outage that writes many phones through cannot hit the 400 KB item limit, and concurrent writers
never contend for one item. An entry is applied until a flush run removes it, expired or not: a stale live
copy was written before the write and expires within one session lifetime, but a write-behind tombstone
never expires until a flush applies it, and a full partition stops every flush. The ``ttl`` (one session
lifetime, ``LIZZY_SESSION_TTL_SECONDS``) only lets DynamoDB sweep entries no flush run removed. The session
table already holds the phones; the logs only ever show them masked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE
from lizzy.dynamodb import (
    ConditionFailed,
    DynamoDBError,
    dynamodb_delete_item,
    dynamodb_query,
    dynamodb_update_item,
)
from lizzy.errors import ServiceUnavailable
from lizzy.phone import mask_phone
from lizzy.redis import redis_session_drop_older

logger = logging.getLogger(__name__)

REGISTRY_PK = "LIZZY#write-behind-bypass"
# Tries of the entry's UpdateItem after the session write succeeded (botocore has retried each already):
# the write is in DynamoDB by then, so a failure is not a refusal, it only leaves the entry out.
REGISTER_ATTEMPTS = 3


@dataclass(frozen=True)
class BypassEntry:
    phone: str
    version: int
    expires_at: int  # DynamoDB's TTL sweeps the entry after it; it is applied until then all the same


def bypass_register(*, phone: str, version: int) -> bool:
    """Record that ``version`` of ``phone`` reached DynamoDB without Redis (never lowers an entry).

    False when DynamoDB refused every try (counted, logged): the write stands; only this process's own
    memory then knows the copy is stale, until the copy expires."""
    expires_at = int(time.time()) + settings.LIZZY_SESSION_TTL_SECONDS
    error: Exception | None = None
    for _attempt in range(REGISTER_ATTEMPTS):
        try:
            dynamodb_update_item(
                table=CACHE_TABLE.name,
                key={"PK": REGISTRY_PK, "SK": phone},
                update="SET #v = :v, #ttl = :ttl",
                condition="attribute_not_exists(#v) OR #v < :v",
                names={"#v": "version", "#ttl": "ttl"},
                values={":v": version, ":ttl": expires_at},
                return_values="NONE",
            )
        except ConditionFailed:
            return True  # a later write of this phone is registered already
        except (DynamoDBError, ServiceUnavailable) as exc:
            error = exc
            continue
        metrics.SESSION_BYPASS_REGISTRY.labels("registered").inc()
        return True
    metrics.SESSION_BYPASS_REGISTRY.labels("register_failed").inc()
    logger.warning(
        "bypass registry: the write of %s without Redis is not registered (%s)",
        mask_phone(phone),
        getattr(error, "code", error),
    )
    return False


def bypass_registry_read() -> list[BypassEntry]:
    """Every entry, expired ones included (one consistent Query per 1 MB page; raises DynamoDBError or
    ServiceUnavailable)."""
    entries: list[BypassEntry] = []
    start = None
    while True:
        page = dynamodb_query(
            table=CACHE_TABLE.name,
            key_condition="PK = :pk",
            values={":pk": REGISTRY_PK},
            consistent=True,
            start_key=start,
        )
        entries.extend(
            BypassEntry(phone=item["SK"], version=int(item["version"]), expires_at=int(item.get("ttl", 0)))
            for item in page.items
        )
        if not page.last_key:
            return entries
        start = page.last_key


def bypass_apply(written: dict[str, int], *, where: str) -> tuple[int, set[str]]:
    """Drop each phone's Redis copy older than the version written without Redis: how many were dropped,
    and the phones Redis had no copy of at all (a cache-aside fill of a copy read before the write may
    still land there: a flush keeps their entries). Raises RedisUnavailable (what was dropped stays
    dropped; applying again is harmless)."""
    dropped, absent = 0, set()
    for phone, version in written.items():
        outcome = redis_session_drop_older(phone=phone, older_than=version)
        if outcome == 1:
            dropped += 1
            metrics.SESSION_FORKS.labels(where).inc()
        elif outcome < 0:
            absent.add(phone)
    return dropped, absent


def bypass_unregister(*, entry: BypassEntry) -> bool:
    """Remove an entry that was applied, unless a newer write of the phone was registered since."""
    try:
        dynamodb_delete_item(
            table=CACHE_TABLE.name,
            key={"PK": REGISTRY_PK, "SK": entry.phone},
            condition="#v = :v",
            names={"#v": "version"},
            values={":v": entry.version},
        )
    except ConditionFailed:
        return False
    return True
