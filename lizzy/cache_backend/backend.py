"""A Django cache backend storing entries in DynamoDB (seed 003: Redis replaced by a cache table).

Django's contract (docs/CACHE.md): any picklable value, pickled like Django's own backends and
authenticated with an HMAC keyed from ``SECRET_KEY`` (``codec.py``); ``OPTIONS["SERIALIZER"] = "json"``
stores JSON instead. Values from 1 KB are zlib-compressed when that makes them smaller. Items are
``items.py``'s layout; DynamoDB deletes expired items only eventually, so every read compares ``ttl`` with now.

Failures, as in seed 003, never break a request but never leave a stale value either:
- a read that fails (DynamoDB error, a value whose signature does not verify) is a miss;
- a ``set`` that fails (DynamoDB error, a value still over the 400 KB item limit after compression)
  deletes the old value, as Django's memcached backend does, so a cache-backed session never reads
  an old session after a failed save; a value the serializer cannot hold raises (Django's contract),
  after the old value is deleted;
- every failure is logged and counted in ``lizzy_cache_errors_total{cache, operation, reason}``.
``incr``/``decr`` of a missing key raise ``ValueError``, as Django's do. ``add`` raises ``CacheWriteFailed``
when it cannot write: False means only "the key exists" (Django's cache session engine retries ``add``
on False, 10,000 times).

Culling (``MAX_ENTRIES``, ``CULL_FREQUENCY``) is refused with ``ImproperlyConfigured``: the table has no
size limit, TTL removes expired items, and counting entries would cost a Scan per cull.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, InvalidCacheKey, default_key_func
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from lizzy import metrics
from lizzy.cache_backend.codec import (
    COMPRESS_MIN_BYTES,
    REJECT_KEY,
    ValueRejected,
    decode_value,
    encode_value,
    verify_value,
)
from lizzy.cache_backend.items import (
    CACHE_TABLE,
    CREATED_ATTR,
    KEY_ATTR,
    NS_ATTR,
    PK_PREFIX,
    SIG_ATTR,
    SK_DATA,
    TTL_ATTR,
    cache_pk,
    is_hashed,
)
from lizzy.cache_backend.serializers import serializer_from_options
from lizzy.cache_backend.serializers.pickle import CanonicalPickleSerializer, PickleSerializer
from lizzy.dynamodb import (
    ITEM_MAX_BYTES,
    ConditionFailed,
    ItemTooLarge,
    dynamodb_batch_get,
    dynamodb_batch_write,
    dynamodb_delete_item,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_scan_segment,
    dynamodb_update_item,
    iso_utc,
    item_size,
)
from lizzy.errors import ApplicationError
from lizzy.tables import table_name

logger = logging.getLogger(__name__)

MAX_TIMEOUT_SECONDS = 100 * 365 * 24 * 3600  # longer timeouts (inf included) are clamped to a century
# Optimistic retries of a contended incr: every lost compare-and-set means another writer's step landed, so
# the loop always makes progress; the bound only stops a runaway (logged as an error), never ordinary contention.
INCR_ATTEMPTS = 10_000
INCR_BACKOFF_MAX_SECONDS = 0.05  # full jitter, doubling from 1 ms
OPTIONS = frozenset({"ALIAS", "SERIALIZER", "PICKLE_PROTOCOL", "COMPRESS_MIN_BYTES", "CONSISTENT_READ"})
CULLING_OPTIONS = ("MAX_ENTRIES", "CULL_FREQUENCY")
LOG_DETAIL_CHARS = 200
REASON_TOO_LARGE = "too_large"
REASON_UNSERIALIZABLE = "unserializable"

ERR_CULLING = (
    "DynamoDBCache does not cull: remove {names} from CACHES[...]; the table has no size limit and DynamoDB's "
    "TTL deletes expired entries (docs/CACHE.md)."
)
ERR_OPTION = "Unknown DynamoDBCache OPTIONS {names}; known: {known}."
ERR_NOT_FOUND = "Key '{key}' not found"
ERR_UNREADABLE = "Key '{key}' could not be read from the cache."
ERR_UNWRITABLE = "Key '{key}' could not be updated in the cache."
ERR_CONTENDED = "Key '{key}' changed {attempts} times during incr; try again."
ERR_ADD_FAILED = "Key '{key}' could not be added to the cache ({reason}); whether it exists is unknown."
ERR_TIMEOUT = "Cache timeout {timeout!r} is not a number of seconds or None."
ERR_KEY_ENCODING = "Cache key {key!r} cannot be stored: it is not valid UTF-8 text (a lone surrogate)."


class CacheWriteFailed(ApplicationError):
    """``add`` could not write: never answered as False, which means "the key exists"."""

    code = "cache_write_failed"
    http_status = 503


_MISSING = object()


def cache_namespace(*, key_func: Any = default_key_func, key_prefix: str = "") -> str:
    """The ``ns`` attribute of a cache's items: its key function and KEY_PREFIX (what clear() deletes)."""
    return f"{getattr(key_func, '__module__', '?')}.{getattr(key_func, '__qualname__', '?')}|{key_prefix}"


def cache_item_attributes(*, full_key: str, value: Any, serializer_name: str = "pickle") -> dict[str, Any]:
    """``data``, ``fmt`` and ``sig`` as a cache with this serializer writes ``value`` under ``full_key``
    (the Redis migration plan re-serializes with it, so a migrated entry reads back like a set one).

    Pickle is canonical here (sets pickled with their members sorted): the copy and its validation run in
    different processes, and a set pickled in hash order would differ, bytes and signature, between them."""
    serializer = serializer_from_options({"SERIALIZER": serializer_name})
    if type(serializer) is PickleSerializer:
        serializer = CanonicalPickleSerializer({})
    return encode_value(full_key=full_key, value=value, serializer=serializer, compress_min_bytes=COMPRESS_MIN_BYTES)


def _check_options(params: dict[str, Any]) -> dict[str, Any]:
    options = params.get("OPTIONS", {})
    culling = [name for name in CULLING_OPTIONS if name in options or name.lower() in params]
    if culling:
        raise ImproperlyConfigured(ERR_CULLING.format(names=", ".join(culling)))
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ImproperlyConfigured(ERR_OPTION.format(names=", ".join(unknown), known=", ".join(sorted(OPTIONS))))
    return options


class DynamoDBCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        options = _check_options(params)
        # Django's BaseCache truncates TIMEOUT with int(): 0.5 would become 0 ("do not store") and
        # infinity an OverflowError; a float is kept as it is and rounded up per write (_expiry).
        raw_timeout = params.get("timeout", params.get("TIMEOUT", 300))
        super().__init__({**params, "timeout": 300} if isinstance(raw_timeout, float) else params)
        if isinstance(raw_timeout, float):
            if math.isnan(raw_timeout):
                raise ImproperlyConfigured(ERR_TIMEOUT.format(timeout=raw_timeout))
            self.default_timeout = raw_timeout
        self._base_name = location or CACHE_TABLE.base_name
        self.alias = options.get("ALIAS", self._base_name)
        self.serializer = serializer_from_options(options)
        self.compress_min_bytes = int(options.get("COMPRESS_MIN_BYTES", COMPRESS_MIN_BYTES))
        # Strongly consistent reads by default: Django's contract is read-your-writes (a deleted
        # session must not come back). They cost 1 read unit per 4 KB; eventually consistent ones half.
        self.consistent_read = bool(options.get("CONSISTENT_READ", True))
        self.clock = time.time  # tests move time instead of sleeping
        # Which cache wrote an item, so clear() deletes this cache's items only: the key prefix alone is
        # ambiguous ("a" is a prefix of "ab", "a:1" of "a"'s keys) and a KEY_FUNCTION may not start with it.
        self.namespace = cache_namespace(key_func=self.key_func, key_prefix=self.key_prefix)

    @property
    def table(self) -> str:
        return table_name(self._base_name)

    # --- helpers ----------------------------------------------------------------------------------

    def _full_key(self, key: Any, version: int | None) -> str:
        """The full key; ``InvalidCacheKey`` (a ValueError) for one DynamoDB cannot hold (a lone surrogate
        has no UTF-8 form): reads answer a miss for it, writes refuse it."""
        full_key = self.make_and_validate_key(key, version=version)
        try:
            full_key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidCacheKey(ERR_KEY_ENCODING.format(key=full_key[:LOG_DETAIL_CHARS])) from None
        return full_key

    @staticmethod
    def _key(full_key: str) -> dict[str, str]:
        return {"PK": cache_pk(full_key), "SK": SK_DATA}

    def _expiry(self, timeout: Any) -> int | None:
        """Epoch seconds the entry stops being served, None for never, 0 for "do not store".

        A fractional timeout is rounded up (0.2 s lives until the next whole second, never 0 = "do not
        store"); one over a century, infinity included, is a century (no OverflowError, no number
        DynamoDB refuses)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if isinstance(timeout, int) and timeout <= 0:
            return 0  # an int below float's range (-10**400) would overflow float()
        if isinstance(timeout, int) and timeout > MAX_TIMEOUT_SECONDS:
            timeout = MAX_TIMEOUT_SECONDS  # an int past float's range (10**400) would overflow float()
        try:
            seconds = float(timeout)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(ERR_TIMEOUT.format(timeout=timeout)) from None
        if math.isnan(seconds):
            raise ValueError(ERR_TIMEOUT.format(timeout=timeout))
        if seconds <= 0:
            return 0
        now = self.clock()
        # At least the next whole second: a timeout too small to move ``now`` (5e-324) must not expire at once.
        return max(math.ceil(now + min(seconds, MAX_TIMEOUT_SECONDS)), math.floor(now) + 1)

    def _live(self, item: dict[str, Any] | None) -> bool:
        """Present and not expired; a ``ttl`` that is not a number (the attribute is unsigned) is expired."""
        if item is None:
            return False
        ttl = item.get(TTL_ATTR)
        if ttl is None:
            return True
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float, Decimal)):
            return False
        return ttl > self.clock()

    def _item(self, full_key: str, value: Any, expiry: int | None) -> dict[str, Any]:
        """The item for ``value``; raises what the serializer raises."""
        item: dict[str, Any] = {
            **self._key(full_key),
            **encode_value(
                full_key=full_key, value=value, serializer=self.serializer, compress_min_bytes=self.compress_min_bytes
            ),
            CREATED_ATTR: iso_utc(timezone.now()),
            NS_ATTR: self.namespace,
        }
        if is_hashed(full_key):
            item[KEY_ATTR] = full_key
        if expiry is not None:
            item[TTL_ATTR] = expiry
        return item

    def _failed(self, operation: str, reason: str, detail: Any = "") -> None:
        metrics.CACHE_BACKEND_ERRORS.labels(self.alias, operation, reason).inc()
        # The handlers' RedactingFilter masks phones and e-mails in the key; a long key is cut short.
        logger.warning("cache %s failed on %s: %s %s", operation, self.alias, reason, str(detail)[:LOG_DETAIL_CHARS])

    def _error(self, operation: str, exc: ApplicationError) -> None:
        self._failed(operation, getattr(exc, "code", type(exc).__name__))

    def _count(self, hit: bool) -> None:
        metrics.CACHE_BACKEND_REQUESTS.labels(self.alias, "hit" if hit else "miss").inc()

    def _owned(self, full_key: str, item: dict[str, Any]) -> bool:
        """A hashed partition key answers only for the key kept in the item (items.py)."""
        return item.get(KEY_ATTR) == (full_key if is_hashed(full_key) else None)

    def _value(self, full_key: str, item: dict[str, Any] | None, operation: str) -> Any:
        """The item's value, or _MISSING (absent, expired, or rejected: counted with its reason)."""
        if not self._live(item):
            return _MISSING
        try:
            if not self._owned(full_key, item):
                raise ValueRejected(REJECT_KEY)
            return decode_value(full_key=full_key, item=item, serializer=self.serializer)
        except ValueRejected as rejected:
            self._failed(operation, rejected.reason, full_key)
            return _MISSING

    def _valid(self, full_key: str, item: dict[str, Any] | None) -> bool:
        """Whether a get would serve the item: live, this key's, authentic and readable back (a value
        that cannot be unpickled any more is not "present", or add() would refuse it forever)."""
        if not self._live(item) or not self._owned(full_key, item):
            return False
        try:
            decode_value(full_key=full_key, item=item, serializer=self.serializer)
        except ValueRejected:
            return False
        return True

    def _authentic(self, full_key: str, item: dict[str, Any] | None) -> bool:
        """Live, this key's and signed by us (nothing is deserialized)."""
        if not self._live(item) or not self._owned(full_key, item):
            return False
        try:
            verify_value(full_key=full_key, item=item, serializer=self.serializer)
        except ValueRejected:
            return False
        return True

    def _read(self, full_key: str, *, consistent: bool | None = None) -> dict[str, Any] | None:
        consistent = self.consistent_read if consistent is None else consistent
        return dynamodb_get_item(table=self.table, key=self._key(full_key), consistent=consistent)

    def _delete_quietly(self, full_key: str, operation: str) -> None:
        try:
            dynamodb_delete_item(table=self.table, key=self._key(full_key))
        except ApplicationError as exc:
            self._error(operation, exc)

    # --- Django's cache API -----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            full_key = self._full_key(key, version)
        except InvalidCacheKey as exc:
            self._failed("get", "invalid_key", exc)
            self._count(False)
            return default
        try:
            item = self._read(full_key)
        except ApplicationError as exc:
            self._error("get", exc)
            self._count(False)
            return default
        value = self._value(full_key, item, "get")
        self._count(value is not _MISSING)
        return default if value is _MISSING else value

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        full_key = self._full_key(key, version)
        expiry = self._expiry(timeout)
        if expiry == 0:
            self._delete_quietly(full_key, "set")
            return
        try:
            item = self._item(full_key, value, expiry)
        except Exception:
            self._failed("set", REASON_UNSERIALIZABLE, full_key)
            self._delete_quietly(full_key, "set")
            raise
        try:
            dynamodb_put_item(table=self.table, item=item)
        except ItemTooLarge as exc:
            self._failed("set", REASON_TOO_LARGE, exc.details)
            self._delete_quietly(full_key, "set")
        except ApplicationError as exc:
            self._error("set", exc)
            self._delete_quietly(full_key, "set")

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """True when stored, False only when the key holds a value a get would serve; raises
        ``CacheWriteFailed`` when DynamoDB fails or the value is too large (never a False that would
        read as "the key exists"), and what the serializer raises."""
        full_key = self._full_key(key, version)
        expiry = self._expiry(timeout)
        try:
            if expiry == 0:
                return not self._valid(full_key, self._read(full_key, consistent=True))
            item = self._item(full_key, value, expiry)
            try:
                self._put_if_absent(item)
            except ConditionFailed:
                # Present: a value a get would serve keeps it; anything a get would miss on (expired but
                # not yet removed, unsigned, forged, undecodable, another key's) is replaced, unless it
                # changed meanwhile.
                present = self._read(full_key, consistent=True)
                if present is None or self._valid(full_key, present):
                    return False
                self._put_if_absent(item, replacing=present)
        except ConditionFailed:
            return False
        except ItemTooLarge as exc:
            self._failed("add", REASON_TOO_LARGE, exc.details)
            raise CacheWriteFailed(ERR_ADD_FAILED.format(key=key, reason=REASON_TOO_LARGE)) from exc
        except ApplicationError as exc:
            self._error("add", exc)
            reason = getattr(exc, "code", type(exc).__name__)
            raise CacheWriteFailed(ERR_ADD_FAILED.format(key=key, reason=reason)) from exc
        return True

    def _put_if_absent(self, item: dict[str, Any], replacing: dict[str, Any] | None = None) -> None:
        condition = "attribute_not_exists(PK) OR #ttl <= :now"
        names, values = {"#ttl": TTL_ATTR}, {":now": int(self.clock())}
        if replacing is not None:
            if SIG_ATTR in replacing:
                condition += " OR #sig = :sig"
                names["#sig"], values[":sig"] = SIG_ATTR, replacing[SIG_ATTR]
            else:
                condition += " OR attribute_not_exists(#sig)"
                names["#sig"] = SIG_ATTR
        dynamodb_put_item(table=self.table, item=item, condition=condition, names=names, values=values)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """True when a live, signed item of this very key got the new timeout (one UpdateItem: the
        condition checks life, signature presence and, for a hashed key, the whole key; the signature
        itself is not verified, which would need a read, and a forged item kept alive is never served)."""
        full_key = self._full_key(key, version)
        expiry = self._expiry(timeout)
        if expiry == 0:
            return self.delete(key, version=version)
        update, values = ("REMOVE #ttl", {}) if expiry is None else ("SET #ttl = :ttl", {":ttl": expiry})
        condition, names, owner = self._live_condition(full_key)
        try:
            dynamodb_update_item(
                table=self.table,
                key=self._key(full_key),
                update=update,
                condition=condition,
                names=names,
                values={**values, **owner},
                return_values="NONE",
            )
        except ConditionFailed:
            return False
        except ApplicationError as exc:
            self._error("touch", exc)
            return False
        return True

    def _live_condition(self, full_key: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """A condition true only of a live, signed item answering for ``full_key``."""
        names = {"#ttl": TTL_ATTR, "#sig": SIG_ATTR, "#key": KEY_ATTR}
        values: dict[str, Any] = {":now": int(self.clock())}
        condition = "attribute_exists(#sig) AND (attribute_not_exists(#ttl) OR #ttl > :now) AND "
        if is_hashed(full_key):
            condition += "#key = :key"
            values[":key"] = full_key
        else:
            condition += "attribute_not_exists(#key)"
        return condition, names, values

    def delete(self, key: Any, version: int | None = None) -> bool:
        """One DeleteItem, whatever was there; True only when it was a live, authentic item of this key."""
        full_key = self._full_key(key, version)
        try:
            old = dynamodb_delete_item(table=self.table, key=self._key(full_key), return_values="ALL_OLD")
        except ApplicationError as exc:
            self._error("delete", exc)
            return False
        return self._authentic(full_key, old)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        try:
            full_key = self._full_key(key, version)
        except InvalidCacheKey as exc:
            self._failed("has_key", "invalid_key", exc)
            return False
        try:
            return self._valid(full_key, self._read(full_key))
        except ApplicationError as exc:
            self._error("has_key", exc)
            return False

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        # Every key given is answered, two keys with one full key (1 and "1") included, as BaseCache does.
        by_pk: dict[str, list[tuple[Any, str]]] = {}
        asked: list[Any] = []
        for key in keys:
            try:
                full_key = self._full_key(key, version)
            except InvalidCacheKey as exc:
                self._failed("get_many", "invalid_key", exc)
                self._count(False)
                continue
            by_pk.setdefault(cache_pk(full_key), []).append((key, full_key))
            asked.append(key)
        if not by_pk:
            return {}
        try:
            items = dynamodb_batch_get(
                table=self.table, keys=[{"PK": pk, "SK": SK_DATA} for pk in by_pk], consistent=self.consistent_read
            )
        except ApplicationError as exc:
            self._error("get_many", exc)
            for _ in asked:
                self._count(False)
            return {}
        found = {}
        for item in items:
            values: dict[str, Any] = {}
            for key, full_key in by_pk.get(item["PK"], ()):
                if full_key not in values:
                    values[full_key] = self._value(full_key, item, "get_many")
                if values[full_key] is not _MISSING:
                    found[key] = values[full_key]
        for key in asked:
            self._count(key in found)
        return found

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        expiry = self._expiry(timeout)
        if expiry == 0:
            self.delete_many(data, version=version)
            return []
        items: dict[str, dict[str, Any]] = {}
        refused: set[str] = set()  # too large: their old values are deleted in the same batch
        keys_by_pk: dict[str, list[tuple[Any, str]]] = {}  # every key given, by the partition key it lands in
        winner: dict[str, str] = {}  # the full key whose value a partition key ends up holding
        for key, value in data.items():
            full_key = self._full_key(key, version)
            try:
                item = self._item(full_key, value, expiry)
            except Exception:
                # Nothing was written yet: every key of the call loses its old value, so none of them
                # reads as the value before a set_many that raised.
                self._failed("set_many", REASON_UNSERIALIZABLE, full_key)
                self.delete_many(data, version=version)
                raise
            pk = item["PK"]
            keys_by_pk.setdefault(pk, []).append((key, full_key))
            winner[pk] = full_key
            if item_size(item) > ITEM_MAX_BYTES:
                self._failed("set_many", REASON_TOO_LARGE, full_key)
                items.pop(pk, None)
                refused.add(pk)
            else:
                items[pk] = item  # a later duplicate key wins, as with a loop of set()
                refused.discard(pk)
        try:
            dynamodb_batch_write(
                table=self.table,
                items=list(items.values()),
                delete_keys=[{"PK": pk, "SK": SK_DATA} for pk in refused],
                key_names=("PK", "SK"),
            )
        except ApplicationError as exc:
            self._error("set_many", exc)
            self._delete_many_quietly(list(items) + list(refused), "set_many")
            return list(data)
        # Not stored: the keys of a refused item, and a key whose partition key (shared by a long, hashed key
        # and a plain key that spells it) ended up holding another key's value.
        failed = []
        for pk, given in keys_by_pk.items():
            failed.extend(key for key, full_key in given if pk in refused or full_key != winner[pk])
        return failed

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self._delete_many_quietly([cache_pk(self._full_key(key, version)) for key in keys], "delete_many")

    def _delete_many_quietly(self, pks: list[str], operation: str) -> None:
        try:
            dynamodb_batch_write(
                table=self.table, delete_keys=[{"PK": pk, "SK": SK_DATA} for pk in set(pks)], key_names=("PK", "SK")
            )
        except ApplicationError as exc:
            self._error(operation, exc)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        full_key = self._full_key(key, version)
        for attempt in range(INCR_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, min(INCR_BACKOFF_MAX_SECONDS, 0.001 * 2 ** min(attempt, 16))))  # noqa: S311
            try:
                item = self._read(full_key, consistent=True)  # the compare-and-set needs the latest value
            except ApplicationError as exc:
                self._error("incr", exc)
                raise ValueError(ERR_UNREADABLE.format(key=key)) from exc
            value = self._value(full_key, item, "incr")
            if value is _MISSING:
                raise ValueError(ERR_NOT_FOUND.format(key=key))
            new = value + delta  # TypeError for a value that is not a number, as in Django's backends
            encoded = self._item(full_key, new, None)
            try:
                # Compare-and-set on the signature (unique per key and bytes): a concurrent write makes
                # us re-read, never lose a step; the ttl is left as it was.
                dynamodb_update_item(
                    table=self.table,
                    key=self._key(full_key),
                    update="SET #data = :data, #fmt = :fmt, #sig = :sig",
                    condition="#sig = :old",
                    names={"#data": "data", "#fmt": "fmt", "#sig": SIG_ATTR},
                    values={
                        ":data": encoded["data"],
                        ":fmt": encoded["fmt"],
                        ":sig": encoded[SIG_ATTR],
                        ":old": item[SIG_ATTR],
                    },
                    return_values="NONE",
                )
            except ConditionFailed:
                continue
            except ApplicationError as exc:
                self._error("incr", exc)
                raise ValueError(ERR_UNWRITABLE.format(key=key)) from exc
            return new
        self._failed("incr", "contended", full_key)
        raise ValueError(ERR_CONTENDED.format(key=key, attempts=INCR_ATTEMPTS))

    def clear(self) -> None:
        """Delete this cache's entries only: the items carrying this cache's namespace (key function and
        key prefix). Items written before the namespace attribute existed are matched by the key prefix
        followed by ``:`` when this cache uses Django's default key function."""
        legacy = ""
        values = {":sk": SK_DATA, ":ns": self.namespace}
        if self.key_func is default_key_func:
            legacy = " OR (attribute_not_exists(#ns) AND begins_with(PK, :legacy))"
            values[":legacy"] = f"{PK_PREFIX}{self.key_prefix}:"
        try:
            keys = [
                {"PK": item["PK"], "SK": item["SK"]}
                for item in dynamodb_scan_segment(
                    table=self.table,
                    filter_expression=f"SK = :sk AND (#ns = :ns{legacy})",
                    names={"#ns": NS_ATTR},
                    values=values,
                )
            ]
            dynamodb_batch_write(table=self.table, delete_keys=keys, key_names=("PK", "SK"))
        except ApplicationError as exc:
            self._error("clear", exc)
