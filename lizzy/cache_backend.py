"""A Django cache backend storing entries in DynamoDB (seed 003: Redis replaced by a cache table).

Items are ``PK = CACHE#{key}``, ``SK = DATA``, ``data`` (the value as JSON), ``ttl`` (epoch seconds,
absent for "forever") and ``createdAt``. DynamoDB deletes expired items only eventually, so every
read compares ``ttl`` with now. Values are JSON, never pickle: a tuple comes back as a list and a
value JSON cannot hold is refused (logged, not stored).

As in seed 003, a cache never breaks a request: DynamoDB errors are logged, counted and treated as
misses (``get`` returns the default, ``set`` does nothing). ``incr``/``decr`` of a missing key raise
``ValueError`` (Django's contract), and a key error from Django's validation still raises.

    CACHES = {"dynamodb": {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "LOCATION": "LizzyCache"}}

``LOCATION`` is the table's base name (the ``LIZZY_ENV`` suffix is added); ``ensure_tables`` creates it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import (
    ConditionFailed,
    dynamodb_batch_get,
    dynamodb_batch_write,
    dynamodb_delete_item,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_scan_segment,
    dynamodb_update_item,
    iso_utc,
)
from lizzy.errors import ApplicationError
from lizzy.tables import TableSpec, register_table, table_name

logger = logging.getLogger(__name__)

CACHE_TABLE = register_table(
    TableSpec(
        base_name="LizzyCache",
        partition_key=("PK", "S"),
        sort_key=("SK", "S"),
        ttl_attribute="ttl",
        description="Django cache entries (seed 003): PK=CACHE#{key}, SK=DATA, data, ttl, createdAt.",
    )
)
PK_PREFIX = "CACHE#"
SK_DATA = "DATA"
INCR_ATTEMPTS = 5  # optimistic retries of a contended incr before giving up (logged as an error)

ERR_NOT_JSON = "Cache value for %s is not JSON serializable (%s); not cached."


class DynamoDBCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._base_name = location or CACHE_TABLE.base_name
        self.alias = params.get("OPTIONS", {}).get("ALIAS", self._base_name)
        self.clock = time.time  # tests move time instead of sleeping

    @property
    def table(self) -> str:
        return table_name(self._base_name)

    # --- helpers ----------------------------------------------------------------------------------

    def _pk(self, key: Any, version: int | None) -> str:
        return PK_PREFIX + self.make_and_validate_key(key, version=version)

    def _expiry(self, timeout: Any) -> int | None:
        """Epoch seconds the entry stops being served, None for never, 0 for "do not store"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if timeout <= 0:
            return 0
        return math.ceil(self.clock() + timeout)

    def _live(self, item: dict[str, Any] | None) -> bool:
        return item is not None and (item.get("ttl") is None or item["ttl"] > self.clock())

    def _item(self, pk: str, value: Any, expiry: int | None) -> dict[str, Any] | None:
        try:
            data = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            logger.error(ERR_NOT_JSON, pk, exc)
            return None
        item: dict[str, Any] = {"PK": pk, "SK": SK_DATA, "data": data, "createdAt": iso_utc(timezone.now())}
        if expiry is not None:
            item["ttl"] = expiry
        return item

    def _failed(self, operation: str, exc: Exception) -> None:
        metrics.CACHE_BACKEND_ERRORS.labels(self.alias, operation).inc()
        logger.warning("cache %s failed on %s: %s", operation, self.alias, getattr(exc, "code", type(exc).__name__))

    def _count(self, hit: bool) -> None:
        metrics.CACHE_BACKEND_REQUESTS.labels(self.alias, "hit" if hit else "miss").inc()

    def _get_item(self, pk: str) -> dict[str, Any] | None:
        item = dynamodb_get_item(table=self.table, key={"PK": pk, "SK": SK_DATA}, consistent=True)
        return item if self._live(item) else None

    # --- Django's cache API -----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        pk = self._pk(key, version)
        try:
            item = self._get_item(pk)
        except ApplicationError as exc:
            self._failed("get", exc)
            self._count(False)
            return default
        self._count(item is not None)
        return default if item is None else json.loads(item["data"])

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        pk = self._pk(key, version)
        expiry = self._expiry(timeout)
        try:
            if expiry == 0:
                dynamodb_delete_item(table=self.table, key={"PK": pk, "SK": SK_DATA})
                return
            item = self._item(pk, value, expiry)
            if item is not None:
                dynamodb_put_item(table=self.table, item=item)
        except ApplicationError as exc:
            self._failed("set", exc)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        pk = self._pk(key, version)
        expiry = self._expiry(timeout)
        try:
            if expiry == 0:
                return self._get_item(pk) is None
            item = self._item(pk, value, expiry)
            if item is None:
                return False
            dynamodb_put_item(
                table=self.table,
                item=item,
                condition="attribute_not_exists(PK) OR #ttl <= :now",
                names={"#ttl": "ttl"},
                values={":now": int(self.clock())},
            )
        except ConditionFailed:
            return False
        except ApplicationError as exc:
            self._failed("add", exc)
            return False
        return True

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        pk = self._pk(key, version)
        expiry = self._expiry(timeout)
        now = int(self.clock())
        try:
            if expiry == 0:
                return self.delete(key, version=version)
            update, values = ("REMOVE #ttl", {}) if expiry is None else ("SET #ttl = :ttl", {":ttl": expiry})
            dynamodb_update_item(
                table=self.table,
                key={"PK": pk, "SK": SK_DATA},
                update=update,
                condition="attribute_exists(PK) AND (attribute_not_exists(#ttl) OR #ttl > :now)",
                names={"#ttl": "ttl"},
                values={**values, ":now": now},
                return_values="NONE",
            )
        except ConditionFailed:
            return False
        except ApplicationError as exc:
            self._failed("touch", exc)
            return False
        return True

    def delete(self, key: Any, version: int | None = None) -> bool:
        pk = self._pk(key, version)
        try:
            dynamodb_delete_item(
                table=self.table,
                key={"PK": pk, "SK": SK_DATA},
                condition="attribute_exists(PK) AND (attribute_not_exists(#ttl) OR #ttl > :now)",
                names={"#ttl": "ttl"},
                values={":now": int(self.clock())},
            )
        except ConditionFailed:
            # Absent, or expired but not yet removed by DynamoDB: remove it anyway, report "was not there".
            self._delete_quietly(pk)
            return False
        except ApplicationError as exc:
            self._failed("delete", exc)
            return False
        return True

    def _delete_quietly(self, pk: str) -> None:
        try:
            dynamodb_delete_item(table=self.table, key={"PK": pk, "SK": SK_DATA})
        except ApplicationError as exc:
            self._failed("delete", exc)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        try:
            return self._get_item(self._pk(key, version)) is not None
        except ApplicationError as exc:
            self._failed("has_key", exc)
            return False

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        by_pk = {self._pk(key, version): key for key in keys}
        if not by_pk:
            return {}
        try:
            items = dynamodb_batch_get(
                table=self.table, keys=[{"PK": pk, "SK": SK_DATA} for pk in by_pk], consistent=True
            )
        except ApplicationError as exc:
            self._failed("get_many", exc)
            for _ in by_pk:
                self._count(False)
            return {}
        found = {by_pk[item["PK"]]: json.loads(item["data"]) for item in items if self._live(item)}
        for pk in by_pk:
            self._count(by_pk[pk] in found)
        return found

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        expiry = self._expiry(timeout)
        if expiry == 0:
            self.delete_many(data, version=version)
            return []
        items, failed = {}, []
        for key, value in data.items():
            pk = self._pk(key, version)
            item = self._item(pk, value, expiry)
            if item is None:
                failed.append(key)
            else:
                items[pk] = item  # a later duplicate key wins, as with a loop of set()
        try:
            dynamodb_batch_write(table=self.table, items=list(items.values()), key_names=("PK", "SK"))
        except ApplicationError as exc:
            self._failed("set_many", exc)
            return list(data)
        return failed

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        pks = {self._pk(key, version) for key in keys}
        try:
            dynamodb_batch_write(
                table=self.table, delete_keys=[{"PK": pk, "SK": SK_DATA} for pk in pks], key_names=("PK", "SK")
            )
        except ApplicationError as exc:
            self._failed("delete_many", exc)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        pk = self._pk(key, version)
        for _attempt in range(INCR_ATTEMPTS):
            try:
                item = self._get_item(pk)
            except ApplicationError as exc:
                self._failed("incr", exc)
                raise ValueError(f"Key '{key}' could not be read from the cache.") from exc
            if item is None:
                raise ValueError(f"Key '{key}' not found")
            value = json.loads(item["data"])
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Cache value of '{key}' is not an integer.")
            new = value + delta
            try:
                # Compare-and-set on the stored text: a concurrent incr makes us re-read, never lose a step.
                dynamodb_update_item(
                    table=self.table,
                    key={"PK": pk, "SK": SK_DATA},
                    update="SET #data = :new",
                    condition="#data = :old",
                    names={"#data": "data"},
                    values={":new": json.dumps(new), ":old": item["data"]},
                    return_values="NONE",
                )
            except ConditionFailed:
                continue
            except ApplicationError as exc:
                self._failed("incr", exc)
                raise ValueError(f"Key '{key}' could not be updated in the cache.") from exc
            return new
        raise ValueError(f"Key '{key}' changed {INCR_ATTEMPTS} times during incr; try again.")

    def clear(self) -> None:
        """Delete this cache's entries only: ``CACHE#`` items under this cache's key prefix."""
        prefix = PK_PREFIX + self.key_prefix
        try:
            keys = [
                {"PK": item["PK"], "SK": item["SK"]}
                for item in dynamodb_scan_segment(
                    table=self.table,
                    filter_expression="begins_with(PK, :prefix) AND SK = :sk",
                    values={":prefix": prefix, ":sk": SK_DATA},
                )
            ]
            dynamodb_batch_write(table=self.table, delete_keys=keys, key_names=("PK", "SK"))
        except ApplicationError as exc:
            self._failed("clear", exc)
