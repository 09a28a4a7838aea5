"""Redis (``redis://HOST:PORT/DB``): keys chosen by pattern with SCAN, each key one row.

A rule names its keys with ``"source-query": "SCAN MATCH PATTERN"`` (a Redis ``MATCH`` glob, e.g.
``SCAN MATCH :1:*``) and ``"source-key": ["key"]``; there are no tables to list. Every key becomes one row
with these columns:

- ``key``: the whole key (text); ``part0`` … ``partN``: the key cut at the separator (``sep``, default
  ``:``) into as many parts as the pattern has, the last part keeping the rest, so key templates
  (``"${part2}"``) build the item key from the key's parts;
- ``type``: ``string``, ``hash``, ``set``, ``zset`` or ``list``;
- ``value``: a string as text (a JSON object or array parsed, numbers as Decimal), or bytes when it is not
  UTF-8; a hash as a map of field to value (a field name that is not UTF-8 is ``"$bytes:"`` + its base64,
  and a text field name starting with ``$$`` or ``$bytes:`` gets one more ``$``, so no two fields meet); a
  set as its members, sorted; a sorted set as ``[{"member": m, "score": s}]`` in score order (``s`` a
  Decimal, or the text ``"inf"`` / ``"-inf"``: DynamoDB numbers are finite); a list as a list. With
  ``values=django-redis`` strings are read as django-redis stored them (``serializer``/``compressor``:
  django-redis's dotted paths, by default its JSON serializer and no compression, the product's own
  setting; name
  ``django_redis.serializers.pickle.PickleSerializer`` only for a Redis nobody but your app writes:
  unpickling runs code);
- ``expires_at``: epoch seconds the key expires (its remaining TTL, rounded up), or NULL: map it into
  ``ttl`` with the rule's ``"ttl": "${expires_at}"``.

A key that is not UTF-8 text, or a string django-redis cannot read (``values=django-redis``), is a bad row:
quarantined under its key (undecodable bytes shown as ``\\xNN``), counted against ``--max-bad-rows``.

Each page is one SCAN call (``COUNT`` = the page size) and one Lua script that reads type, TTL and value of
its keys atomically, so a key never comes back with one type's TTL and another's value. A key that expired
(or was deleted) between SCAN and the read, or whose TTL is already over, is skipped and counted
(``skipped_expired``, ``lizzy_migration_source_skipped_total{reason="expired"}``); a key of another type (a
stream) is skipped and counted too (``reason="unsupported_type"``), and validation's count shows it missing.
The checkpoint is SCAN's cursor (``done`` after the last page, never SCAN's ``0`` that would start over): a
run killed in the middle resumes from the last page it wrote; quarantined rows are named by their key. SCAN returns
every key that exists for the whole scan at least once; a key it returns twice (Redis rehashing) is written
twice, the same item. ``count`` is one more SCAN pass (keys counted once each), so validation reconciles
counts as for any source.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from django.utils.module_loading import import_string
from django_redis.exceptions import CompressorError

from lizzy import metrics
from lizzy.exact_json import exact_json
from lizzy.redis_source import RedisError, redis_source_client
from migration_app.sources.base import ERR_SOURCE, KEY, ROW_ERROR, Relation, SourceError

logger = logging.getLogger(__name__)

ERR_NO_PATTERN = (
    'A Redis source has no tables: give the rule its keys, "source-query": "SCAN MATCH PATTERN", '
    'and "source-key": ["key"].'
)
SCAN_MATCH = "scan match "
ERR_OPTION = "Unknown Redis source option(s) {names}; known: {known}."
ERR_VALUES = "values={value!r}: use auto (text, JSON parsed) or django-redis."
OPTIONS = ("sep", "values", "serializer", "compressor")
DEFAULT_SERIALIZER = "django_redis.serializers.json.JSONSerializer"
DEFAULT_COMPRESSOR = "django_redis.compressors.identity.IdentityCompressor"
SOCKET_TIMEOUT_SECONDS = 10
FIXED_COLUMNS = ("key", "type", "value", "expires_at")
TYPES = ("string", "hash", "set", "zset", "list")
DONE = "done"  # the checkpoint after the last page: a resume reads nothing (SCAN's cursor 0 would restart)
BYTES_FIELD = "$bytes:"
ERR_KEY_NOT_UTF8 = "the Redis key is not UTF-8 text (DynamoDB and the quarantine hold text); not copied"
ERR_UNREADABLE_VALUE = "the value is not {serializer} data: {problem}"


class _UnreadableValue(Exception):
    pass


class _Row(dict):
    """A row; ``checkpoint`` (the SCAN cursor after its page) is kept off the columns."""

    __slots__ = ("checkpoint",)


def _field_name(raw: bytes) -> str:
    """A hash field as a map key (text): injective, so two Redis fields never become one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return BYTES_FIELD + base64.b64encode(raw).decode("ascii")
    return "$" + text if text.startswith(("$$", BYTES_FIELD)) else text


def _score(raw: bytes) -> Decimal | str:
    text = raw.decode("ascii")
    number = Decimal(text)
    return number if number.is_finite() else ("-inf" if number < 0 else "inf")


# The server's clock (TIME) first, then for each key: its type, its remaining TTL in ms, its value. TIME is
# read before any PTTL: Redis 7 computes PTTL inside a script from the time the script started, so a clock
# read after a long page would push every expiry later (clock + PTTL is the expiry only with that clock).
READ_SCRIPT = """
local now = redis.call('TIME')
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  local pttl = redis.call('PTTL', key)
  local value = false
  if kind == 'string' then value = redis.call('GET', key)
  elseif kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'set' then value = redis.call('SMEMBERS', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif kind == 'list' then value = redis.call('LRANGE', key, 0, -1)
  end
  out[i] = {kind, pttl, value}
end
return {now, out}
"""


def _text(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _auto_string(raw: bytes) -> Any:
    text = _text(raw)
    if isinstance(text, str) and text[:1] in ("{", "["):
        try:
            return exact_json(text)
        except ValueError:
            return text
    return text


class RedisSource:
    """A Redis database read by key pattern; the same contract as ``base.SqlSource`` (one relation per pattern)."""

    ignores_schema = True
    scheme = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        unknown = sorted(set(query) - set(OPTIONS))
        if unknown:
            raise SourceError(ERR_OPTION.format(names=", ".join(unknown), known=", ".join(OPTIONS)))
        option = {name: values[-1] for name, values in query.items()}
        self.separator = option.get("sep", ":")
        self.values = option.get("values", "auto")
        if self.values not in ("auto", "django-redis"):
            raise SourceError(ERR_VALUES.format(value=self.values))
        self.serializer = None
        self.compressor = None
        if self.values == "django-redis":
            try:
                self.serializer = import_string(option.get("serializer", DEFAULT_SERIALIZER))({})
                self.compressor = import_string(option.get("compressor", DEFAULT_COMPRESSOR))({})
            except ImportError as exc:
                raise SourceError(ERR_SOURCE.format(problem=exc)) from exc
        self.skipped_expired = 0
        self.skipped_unsupported = 0
        plain = urlunparse(parsed._replace(query=urlencode({})))
        try:
            self.client = redis_source_client(plain, timeout=SOCKET_TIMEOUT_SECONDS)
            self._read = self.client.register_script(READ_SCRIPT)
        except (RedisError, ValueError) as exc:
            raise SourceError(ERR_SOURCE.format(problem=exc)) from exc

    # -- description (what mapping_resolve asks) ----------------------------------------------------
    def tables(self) -> list[tuple[str, str]]:
        return []

    @staticmethod
    def pattern(query: str | None) -> str:
        """The MATCH pattern of a rule's ``SCAN MATCH PATTERN``."""
        if not query or not query.lower().startswith(SCAN_MATCH) or not query[len(SCAN_MATCH) :].strip():
            raise SourceError(ERR_NO_PATTERN)
        return query[len(SCAN_MATCH) :].strip()

    def _parts(self, query: str | None) -> int:
        return self.pattern(query).count(self.separator) + 1

    def columns(self, *, schema: str, table: str | None, query: str | None) -> list[str]:
        return [*FIXED_COLUMNS, *(f"part{index}" for index in range(self._parts(query)))]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        return ["key"]

    def column_types(self, *, schema: str, table: str | None, query: str | None) -> dict[str, str]:
        return {}

    def unexact_values(self, relation: Relation, *, columns: dict[str, str]) -> list[tuple[str, Any]]:
        return []

    def relation(self, entity: Any) -> Relation:
        return Relation("", None, entity.query, ("key",), None, (), ())

    # -- reading ----------------------------------------------------------------------------------
    def _call(self, function, *args, **kwargs) -> Any:  # noqa: ANN001
        try:
            return function(*args, **kwargs)
        except RedisError as exc:
            raise SourceError(ERR_SOURCE.format(problem=f"{type(exc).__name__}: {exc}")) from exc

    def boundaries(self, relation: Relation, *, segments: int, since: Any = None) -> list[list[Any]]:
        return []  # one segment: a SCAN cursor cannot be cut into ranges

    def estimate_rows(self, relation: Relation, *, since: Any = None) -> int:
        """Keys matching the pattern: one SCAN pass (Redis keeps no per-pattern statistics)."""
        return self.count(relation, since=since)

    def key_after(
        self, relation: Relation, *, after: list[Any] | None, rows: int, since: Any = None
    ) -> list[Any] | None:
        """Never a cut: a SCAN cursor is no key order, so a rule's keys are one work unit (and one validation
        part), resumed from its cursor checkpoint."""
        return None

    def count(self, relation: Relation, *, since: Any = None, lower: Any = None, upper: Any = None) -> int:
        """Keys matching the pattern now (each once, however often SCAN returns it)."""
        seen: set[bytes] = set()
        cursor = 0
        while True:
            cursor, keys = self._call(self.client.scan, cursor=cursor, match=self.pattern(relation.query), count=1000)
            seen.update(keys)
            if cursor == 0:
                return len(seen)

    def pages(
        self, relation: Relation, *, after: list[Any] | None, upper: Any, page_size: int, since: Any = None
    ) -> Iterator[list[dict[str, Any]]]:
        """One page per SCAN call, starting at the checkpoint's cursor (``key_of`` a row: the next cursor)."""
        if after and str(after[0]) in (DONE, "0"):
            return  # the last page was written ("0": a checkpoint written before "done" existed, also the end)
        cursor = int(after[0]) if after else 0
        parts = self._parts(relation.query)
        while True:
            cursor, keys = self._call(
                self.client.scan, cursor=cursor, match=self.pattern(relation.query), count=page_size
            )
            rows = self._rows(keys, parts, cursor) if keys else []
            if rows:
                yield rows
            if cursor == 0:
                return

    def _rows(self, keys: list[bytes], parts: int, cursor: int) -> list[dict[str, Any]]:
        (seconds, micros), answers = self._call(self._read, keys=keys)
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        rows = []
        expired = unsupported = 0
        for raw_key, (kind, pttl, value) in zip(keys, answers, strict=True):
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind != "none" and kind not in TYPES:
                unsupported += 1  # a stream or a module's type: no mapping says what item it would be
                continue
            if kind == "none" or pttl == -2 or value is None or value is False:
                expired += 1  # expired or deleted between SCAN and the read
                continue
            problem = None
            try:
                key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                key, problem = raw_key.decode("utf-8", errors="backslashreplace"), ERR_KEY_NOT_UTF8
            try:
                converted = self._value(kind, value)
            except _UnreadableValue as exc:
                converted, problem = value, problem or str(exc)
            row = _Row(
                {
                    "key": key,
                    "type": kind,
                    "value": converted,
                    "expires_at": None if pttl < 0 else math.ceil((now_ms + pttl) / 1000),
                }
            )
            for index, part in enumerate(key.split(self.separator, parts - 1)):
                row[f"part{index}"] = part
            for index in range(len(key.split(self.separator, parts - 1)), parts):
                row[f"part{index}"] = None
            row[KEY] = [key]  # the row's source key: what a quarantined row is named by
            if problem:
                row[ROW_ERROR] = problem
            row.checkpoint = [str(cursor) if cursor else DONE]
            rows.append(row)
        if unsupported:
            self.skipped_unsupported += unsupported
            metrics.MIGRATION_SOURCE_SKIPPED.labels("redis", "unsupported_type").inc(unsupported)
            logger.warning("redis source: %d key(s) of a type it does not map (a stream?) skipped", unsupported)
        if expired:
            self.skipped_expired += expired
            metrics.MIGRATION_SOURCE_SKIPPED.labels("redis", "expired").inc(expired)
            logger.info(
                "redis source: %d key(s) expired during the copy, skipped (%d so far)", expired, self.skipped_expired
            )
        return rows

    def _value(self, kind: str, value: Any) -> Any:
        if kind == "string":
            return self._django_redis_value(value) if self.values == "django-redis" else _auto_string(value)
        if kind == "hash":
            pairs = iter(value)
            return {_field_name(field): _text(data) for field, data in zip(pairs, pairs, strict=True)}
        if kind == "set":
            return [_text(member) for member in sorted(value)]
        if kind == "zset":
            pairs = iter(value)
            return [
                {"member": _text(member), "score": _score(score)} for member, score in zip(pairs, pairs, strict=True)
            ]
        return [_text(element) for element in value]

    def _django_redis_value(self, raw: bytes) -> Any:
        """As django-redis reads its own values: integers are stored as digits, the rest serialized."""
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            with contextlib.suppress(CompressorError):  # django-redis leaves small values uncompressed
                raw = self.compressor.decompress(raw)
            return self.serializer.loads(raw)
        except Exception as exc:  # noqa: BLE001 - a value django-redis could not read either
            problem = ERR_UNREADABLE_VALUE.format(serializer=type(self.serializer).__name__, problem=exc)
            raise _UnreadableValue(problem[:500]) from exc

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[bool]:
        """Redis has no read snapshot: a SCAN sees keys as they are when it reaches them (SqlSource.snapshot)."""
        yield False

    def key_of(self, row: dict[str, Any], relation: Relation) -> list[Any]:
        """The checkpoint after the row's page: SCAN's next cursor, or ``done`` after the last page."""
        return row.checkpoint if isinstance(row, _Row) else row[KEY]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
