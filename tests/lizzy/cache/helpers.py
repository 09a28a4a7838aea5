"""Shared by the cache backend tests: a movable clock, a cache on moto's in-process mock, raw items."""

from __future__ import annotations

from typing import Any

from lizzy import metrics
from lizzy.cache_backend import DynamoDBCache, cache_pk
from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def make_cache(clock: Clock | None = None, location: str = "LizzyCache", **params: Any) -> DynamoDBCache:
    cache = DynamoDBCache(location, params)
    if clock is not None:
        cache.clock = clock
    return cache


def raw_item(cache: DynamoDBCache, key: str, version: int | None = None) -> dict[str, Any] | None:
    full_key = cache.make_key(key, version=version)
    return dynamodb_get_item(table=cache.table, key={"PK": cache_pk(full_key), "SK": "DATA"}, consistent=True)


def put_raw(cache: DynamoDBCache, item: dict[str, Any]) -> None:
    dynamodb_put_item(table=cache.table, item=item)


def errors(cache: DynamoDBCache, operation: str, reason: str) -> float:
    return metrics.CACHE_BACKEND_ERRORS.labels(cache.alias, operation, reason)._value.get()
