"""The one door to DynamoDB.

Only this module imports boto3. It owns:

* one low-level client per process (clients are thread-safe, resources are not), with explicit
  timeouts, the ``standard`` retry mode and a connection pool sized for our worker threads;
* the type codec (boto3's TypeSerializer/TypeDeserializer plus the conversions DynamoDB lacks:
  floats as exact Decimals, datetimes as ISO 8601 UTC strings, NaN/Infinity refused);
* verb functions (``dynamodb_get_item``, ``dynamodb_batch_write``...) that translate botocore errors
  into the product's errors and record latency and consumed capacity per table and operation.

Every call goes through ``_call(operation, ...)``; ``tests/lizzy/test_iam_policy.py`` reads those
operation names to check ``docs/iam-policy.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from rest_framework import status

from lizzy import metrics
from lizzy.errors import ApplicationError, ServiceUnavailable, ValidationFailed

logger = logging.getLogger(__name__)

BATCH_WRITE_MAX_ITEMS = 25  # DynamoDB's BatchWriteItem maximum requests per call
BATCH_WRITE_MAX_BYTES = 16 * 1024 * 1024  # DynamoDB's BatchWriteItem maximum request size
BATCH_GET_MAX_KEYS = 100  # DynamoDB's BatchGetItem maximum keys per call
ITEM_MAX_BYTES = 400 * 1024  # DynamoDB's item size limit, attribute names included
BATCH_MAX_ATTEMPTS = 10
BATCH_BACKOFF_BASE_SECONDS = 0.05
BATCH_BACKOFF_CAP_SECONDS = 5.0

THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_CAPACITY_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchWriteItem", "BatchGetItem"}
)

ERR_NAN = "DynamoDB cannot store NaN or Infinity (attribute {path})."
ERR_EMPTY_SET = "DynamoDB cannot store an empty set (attribute {path})."
ERR_MIXED_SET = "A set must hold only strings, only numbers or only bytes (attribute {path})."
ERR_TYPE = "Cannot store a value of type {type} (attribute {path})."
ERR_NUMBER = "Number {value} is outside what DynamoDB can store exactly (38 digits) (attribute {path})."
ERR_MAP_KEY = "Map keys must be strings (attribute {path})."
ERR_TOO_LARGE = "The item is {size} bytes; DynamoDB's limit is {limit} bytes (400 KB). Nothing was written."
ERR_BATCH_INCOMPLETE = "{count} item(s) were not written to {table} after {attempts} attempts."
ERR_DUPLICATE_KEYS = "{count} item(s) in one batch for {table} share a key with another item; batch not sent."
ERR_UNAVAILABLE = "DynamoDB is unreachable ({reason}). Nothing was written; try again shortly."
ERR_THROTTLED = "DynamoDB throttled the request to {table}. Try again shortly."
ERR_TABLE_MISSING = "DynamoDB table {table} does not exist. Run `python manage.py ensure_tables`."


# --- Errors -------------------------------------------------------------------------------------


class DynamoDBError(ApplicationError):
    code = "dynamodb_error"
    http_status = status.HTTP_502_BAD_GATEWAY


class DynamoDBUnavailable(ServiceUnavailable):
    code = "dynamodb_unavailable"


class DynamoDBThrottled(ServiceUnavailable):
    code = "dynamodb_throttled"


class TableNotFound(DynamoDBError):
    code = "table_not_found"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


class ConditionFailed(DynamoDBError):
    """A ConditionExpression did not hold; callers turn it into their own domain error."""

    code = "condition_failed"
    http_status = status.HTTP_409_CONFLICT


class CodecError(ValidationFailed):
    code = "unstorable_value"


class ItemTooLarge(ValidationFailed):
    code = "item_too_large"
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class BatchWriteIncomplete(DynamoDBError):
    code = "batch_write_incomplete"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, unwritten: int, written: int) -> None:
        super().__init__(message, details={"unwritten": unwritten, "written": written})
        self.unwritten = unwritten
        self.written = written


class DuplicateKeysInBatch(ValidationFailed):
    code = "duplicate_keys_in_batch"


# --- Client ---------------------------------------------------------------------------------------

_client = None
_client_lock = threading.Lock()
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _client_kwargs() -> dict[str, Any]:
    endpoint = settings.AWS_ENDPOINT_URL_DYNAMODB
    kwargs: dict[str, Any] = {
        "region_name": settings.AWS_REGION,
        "config": Config(
            connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT,
            read_timeout=settings.DYNAMODB_READ_TIMEOUT,
            retries={"mode": "standard", "max_attempts": settings.DYNAMODB_MAX_ATTEMPTS},
            max_pool_connections=settings.DYNAMODB_MAX_POOL_CONNECTIONS,
            tcp_keepalive=True,
        ),
    }
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    session = boto3.session.Session()
    if endpoint and urlparse(endpoint).hostname in _LOOPBACK_HOSTS and session.get_credentials() is None:
        # A local endpoint accepts any signature; these are placeholders, not secrets.
        kwargs["aws_access_key_id"] = "lizzy-local"
        kwargs["aws_secret_access_key"] = "lizzy-local"  # noqa: S105
    return {"session": session, **kwargs}


def get_client() -> Any:
    """The process's DynamoDB client, created on first use."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                kwargs = _client_kwargs()
                session = kwargs.pop("session")
                _client = session.client("dynamodb", **kwargs)
    return _client


def reset_client() -> None:
    """Forget the cached client (tests entering moto's mock, or a changed endpoint)."""
    global _client
    with _client_lock:
        _client = None
    _key_names_cache.clear()


# --- Codec ----------------------------------------------------------------------------------------

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _number(value: Decimal, path: str) -> Decimal:
    if not value.is_finite():
        raise CodecError(ERR_NAN.format(path=path), details={"attribute": path})
    return value


def to_storable(value: Any, path: str = "$") -> Any:
    """Convert a Python value into what TypeSerializer accepts, exactly or not at all."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CodecError(ERR_NAN.format(path=path), details={"attribute": path})
        return Decimal(str(value))  # repr-exact, never the binary expansion
    if isinstance(value, Decimal):
        return _number(value, path)
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(ERR_MAP_KEY.format(path=path), details={"attribute": path})
            out[key] = to_storable(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_storable(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        if not value:
            raise CodecError(ERR_EMPTY_SET.format(path=path), details={"attribute": path})
        members = {to_storable(item, f"{path}{{}}") for item in value}
        kinds = {"n" if isinstance(m, (int, Decimal)) and not isinstance(m, bool) else type(m) for m in members}
        if len(kinds) != 1 or next(iter(kinds)) not in ("n", str, bytes):
            raise CodecError(ERR_MIXED_SET.format(path=path), details={"attribute": path})
        return members
    raise CodecError(ERR_TYPE.format(type=type(value).__name__, path=path), details={"attribute": path})


def iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as the seeds write timestamps; naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def serialize_value(value: Any, path: str = "$") -> dict[str, Any]:
    storable = to_storable(value, path)
    try:
        return _serializer.serialize(storable)
    except (TypeError, InvalidOperation, ArithmeticError) as exc:
        raise CodecError(ERR_NUMBER.format(value=value, path=path), details={"attribute": path}) from exc


_INT_LIMIT = 10**38  # DynamoDB numbers carry 38 significant digits; integers below this are exact


def _wire(value: Any, path: str) -> dict[str, Any]:
    """serialize_value with the common types done inline (same output, the same errors).

    Strings, booleans, None, small integers, datetimes, maps and lists are most of every item; the
    generic TypeSerializer tests each value against every type in turn. Everything else (Decimal,
    float, bytes, sets, huge integers, unknown types) takes the general path.
    """
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise CodecError(ERR_MAP_KEY.format(path=path), details={"attribute": path})
            out[key] = _wire(item, f"{path}.{key}")
        return {"M": out}
    if kind is list:
        return {"L": [_wire(item, f"{path}[{index}]") for index, item in enumerate(value)]}
    if kind is dt.datetime:
        return {"S": iso_utc(value)}
    return serialize_value(value, path)


def serialize_item(item: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _wire(value, name) for name, value in item.items()}


def _wire_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for a serialized attribute value (the same rules as ``value_size``)."""
    ((kind, body),) = value.items()
    if kind == "S":
        return len(body) if body.isascii() else len(body.encode("utf-8"))
    if kind == "N":
        return _number_size(Decimal(body))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(1 + len(key.encode("utf-8")) + _wire_size(item) for key, item in body.items())
    if kind == "L":
        return 3 + sum(1 + _wire_size(item) for item in body)
    if kind == "B":
        return len(body)
    if kind == "SS":
        return sum(len(member.encode("utf-8")) for member in body)
    if kind == "NS":
        return sum(_number_size(Decimal(member)) for member in body)
    return sum(len(member) for member in body)  # BS


class _NeedsGeneralPath(Exception):
    """Raised inside ``_wire_sized`` for what it does not handle inline; the caller takes ``_wire``."""


def _wire_sized(value: Any) -> tuple[dict[str, Any], int]:
    """(wire form, DynamoDB size) in one walk, with no per-node path strings.

    The common types of a session item or a migrated row are done here; anything else (or anything
    the codec refuses) raises ``_NeedsGeneralPath`` and the caller redoes the item with ``_wire``, which
    names the offending attribute's nested path. A 12.5 KB session: 347 → 135 µs for wire + size
    (docs/BENCHMARKS.md, benchmark 3).
    """
    kind = type(value)
    if kind is str:
        return {"S": value}, (len(value) if value.isascii() else len(value.encode("utf-8")))
    if kind is dict:
        out = {}
        size = 3
        for key, item in value.items():
            if type(key) is not str:
                raise _NeedsGeneralPath
            out[key], item_size = _wire_sized(item)
            size += 1 + (len(key) if key.isascii() else len(key.encode("utf-8"))) + item_size
        return {"M": out}, size
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        text = str(value)
        return {"N": text}, _digits_size(text.lstrip("-"))
    if kind is list:
        items = []
        size = 3
        for item in value:
            wire, item_size = _wire_sized(item)
            items.append(wire)
            size += 1 + item_size
        return {"L": items}, size
    if kind is bool:
        return {"BOOL": value}, 1
    if value is None:
        return {"NULL": True}, 1
    if kind is dt.datetime:
        text = iso_utc(value)
        return {"S": text}, len(text)
    try:
        wire = serialize_value(value, "")
    except CodecError as exc:
        raise _NeedsGeneralPath from exc
    return wire, _wire_size(wire)


def serialize_checked(item: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], int]:
    """(wire item, size): serialized and measured in one walk, refused if over 400 KB.

    Measuring while serializing spares a second walk over every value (``check_item_size``), which
    was a third of a migration's CPU (docs/BENCHMARKS.md, benchmark 4).
    """
    wire: dict[str, dict[str, Any]] = {}
    size = 0
    try:
        for name, value in item.items():
            wire[name], value_bytes = _wire_sized(value)
            size += (len(name) if name.isascii() else len(name.encode("utf-8"))) + value_bytes
    except _NeedsGeneralPath:
        wire = serialize_item(item)  # raises the codec's error with the attribute's path, if any
        size = sum(len(name.encode("utf-8")) + _wire_size(value) for name, value in wire.items())
    if size > ITEM_MAX_BYTES:
        raise ItemTooLarge(
            ERR_TOO_LARGE.format(size=size, limit=ITEM_MAX_BYTES), details={"size": size, "limit": ITEM_MAX_BYTES}
        )
    return wire, size


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else value
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    if isinstance(value, set):
        return {_from_dynamo(item) for item in value}
    return value


def deserialize_value(value: dict[str, Any]) -> Any:
    return _from_dynamo(_deserializer.deserialize(value))


def _unwire(value: dict[str, Any]) -> Any:
    """deserialize_value with strings, numbers, maps, lists, booleans and nulls done inline (same result).

    A session item is ~12 KB of nested maps; the generic TypeDeserializer plus our int/bytes pass
    walked it twice per read (docs/BENCHMARKS.md, benchmark 3). Binary and sets take the general path.
    """
    ((kind, body),) = value.items()
    if kind == "S":
        return body
    if kind == "M":
        return {key: _unwire(item) for key, item in body.items()}
    if kind == "N":
        if body.isdecimal() or (body[:1] == "-" and body[1:].isdecimal()):
            return int(body)
        return deserialize_value(value)
    if kind == "L":
        return [_unwire(item) for item in body]
    if kind == "BOOL":
        return body
    if kind == "NULL":
        return None
    return deserialize_value(value)


def deserialize_item(item: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: _unwire(value) for name, value in item.items()}


def _number_size(value: Any) -> int:
    """1 byte per two significant digits + 1; leading and trailing zeros do not count.

    Counted from the exact digits: ``Decimal.normalize()`` rounds to the context's 28 digits, which
    undercounted numbers of 29-38 digits.
    """
    return _digits_size("".join(map(str, Decimal(value).as_tuple().digits)))


def _digits_size(digits: str) -> int:
    """DynamoDB's size of a number written with ``digits`` (no sign, no point)."""
    return (len(digits.strip("0") or "0") + 1) // 2 + 1


def value_size(value: Any) -> int:
    """Bytes DynamoDB counts for a storable value (the documented item-size rules)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (int, Decimal)):
        return _number_size(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(key.encode("utf-8")) + value_size(item) for key, item in value.items())
    if isinstance(value, list):
        return 3 + sum(1 + value_size(item) for item in value)
    if isinstance(value, set):
        return sum(value_size(item) for item in value)
    raise CodecError(ERR_TYPE.format(type=type(value).__name__, path="$"))


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + value_size(to_storable(value, name)) for name, value in item.items())


def check_item_size(item: Mapping[str, Any]) -> int:
    size = item_size(item)
    if size > ITEM_MAX_BYTES:
        raise ItemTooLarge(
            ERR_TOO_LARGE.format(size=size, limit=ITEM_MAX_BYTES), details={"size": size, "limit": ITEM_MAX_BYTES}
        )
    return size


# --- Calls, errors and consumed capacity ----------------------------------------------------------

_capacity_lock = threading.Lock()
_capacity: dict[tuple[str, str], dict[str, float]] = {}
_call_listeners: list[list[tuple[str, str]]] = []
# Called as listener(kind, operation, table, code) with kind "system", "user" or "throttled" (the
# CloudWatch alarm classes of seed 000); the ops console records them with timestamps for its alarms.
_error_listeners: list[Callable[[str, str, str, str], None]] = []


def add_error_listener(listener: Callable[[str, str, str, str], None]) -> None:
    """Be told about every failed or throttled DynamoDB request (idempotent per listener)."""
    if listener not in _error_listeners:
        _error_listeners.append(listener)


def _notify_error(kind: str, operation: str, table: str, code: str) -> None:
    for listener in list(_error_listeners):
        try:
            listener(kind, operation, table, code)
        except Exception:  # a listener must never turn into the caller's error
            logger.exception("DynamoDB error listener failed")


# A fault hook wraps every call: hook(operation, params, send) -> response. ``send(params)`` makes the
# real call; a hook may alter the params, the response, or raise botocore's ClientError. It exists so
# that tests and drills can inject UnprocessedItems and throttling against any endpoint.
FaultHook = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]], dict[str, Any]]
_fault_hook: FaultHook | None = None


def _record_capacity(operation: str, consumed: Any) -> None:
    entries = consumed if isinstance(consumed, list) else [consumed]
    for entry in entries:
        if not entry:
            continue
        table = entry.get("TableName", "?")
        read = float(entry.get("ReadCapacityUnits", 0) or 0)
        write = float(entry.get("WriteCapacityUnits", 0) or 0)
        total = float(entry.get("CapacityUnits", 0) or 0)
        if not read and not write and total:
            # Endpoints that report only a total: reads and writes are told apart by the operation.
            if operation in {"GetItem", "Query", "Scan", "BatchGetItem"}:
                read = total
            else:
                write = total
        with _capacity_lock:
            bucket = _capacity.setdefault((table, operation), {"read": 0.0, "write": 0.0, "calls": 0})
            bucket["read"] += read
            bucket["write"] += write
            bucket["calls"] += 1
        if read:
            metrics.DYNAMODB_CONSUMED.labels(table, operation, "read").inc(read)
        if write:
            metrics.DYNAMODB_CONSUMED.labels(table, operation, "write").inc(write)


def consumed_capacity(*, reset: bool = False) -> dict[tuple[str, str], dict[str, float]]:
    """Consumed read/write units per (table, operation) since start (or the last reset)."""
    with _capacity_lock:
        snapshot = {key: dict(value) for key, value in _capacity.items()}
        if reset:
            _capacity.clear()
    return snapshot


@contextmanager
def fault_injection(hook: FaultHook) -> Iterator[None]:
    """Route every DynamoDB call through ``hook`` while the block runs (drills and tests)."""
    global _fault_hook
    previous, _fault_hook = _fault_hook, hook
    try:
        yield
    finally:
        _fault_hook = previous


def client_error(code: str, message: str, operation: str) -> Exception:
    """A botocore ClientError as DynamoDB would send it (for fault hooks: they must not import botocore)."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@contextmanager
def record_calls() -> Iterator[list[tuple[str, str]]]:
    """Collect (operation, table) for every DynamoDB call made while the block runs, in any thread."""
    calls: list[tuple[str, str]] = []
    _call_listeners.append(calls)
    try:
        yield calls
    finally:
        _call_listeners.remove(calls)


def _translate(operation: str, table: str, exc: Exception) -> Exception:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        metrics.DYNAMODB_ERRORS.labels(operation, table, code).inc()
        if code == "ConditionalCheckFailedException":
            return ConditionFailed(message)  # CloudWatch counts these apart from UserErrors too
        if code in THROTTLING_CODES:
            metrics.DYNAMODB_THROTTLES.labels(operation, table).inc()
            _notify_error("throttled", operation, table, code)
            return DynamoDBThrottled(ERR_THROTTLED.format(table=table), details={"code": code})
        http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        _notify_error("system" if http_status >= 500 else "user", operation, table, code)
        if code == "ResourceNotFoundException":
            return TableNotFound(ERR_TABLE_MISSING.format(table=table), details={"table": table})
        error = DynamoDBError(f"DynamoDB {operation} failed: {code}: {message}", details={"code": code})
        error.aws_code = code
        return error
    name = type(exc).__name__
    metrics.DYNAMODB_ERRORS.labels(operation, table, name).inc()
    _notify_error("system", operation, table, name)
    if isinstance(exc, _TRANSPORT_ERRORS):
        return DynamoDBUnavailable(ERR_UNAVAILABLE.format(reason=name), details={"reason": name})
    return DynamoDBError(f"DynamoDB {operation} failed: {exc}", details={"code": name})


_TRANSPORT_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def _call(operation: str, /, *, table: str = "-", **params: Any) -> dict[str, Any]:
    """Call one DynamoDB API operation: latency, capacity and errors recorded, errors translated."""
    if operation in _CAPACITY_OPERATIONS:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
    method = getattr(get_client(), _snake(operation))
    for listener in list(_call_listeners):
        listener.append((operation, table))
    started = time.perf_counter()
    try:
        hook = _fault_hook
        response = hook(operation, params, lambda sent: method(**sent)) if hook else method(**params)
    except (ClientError, BotoCoreError) as exc:
        raise _translate(operation, table, exc) from exc
    finally:
        metrics.DYNAMODB_LATENCY.labels(operation, table).observe(time.perf_counter() - started)
    if "ConsumedCapacity" in response:
        _record_capacity(operation, response["ConsumedCapacity"])
    return response


def _snake(operation: str) -> str:
    return "".join("_" + char.lower() if char.isupper() else char for char in operation).lstrip("_")


def _expression_kwargs(names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if names:
        kwargs["ExpressionAttributeNames"] = dict(names)
    if values:
        kwargs["ExpressionAttributeValues"] = {k: serialize_value(v, k) for k, v in values.items()}
    return kwargs


# --- Item verbs -----------------------------------------------------------------------------------


def dynamodb_get_item(*, table: str, key: Mapping[str, Any], consistent: bool = False) -> dict[str, Any] | None:
    response = _call("GetItem", table=table, TableName=table, Key=serialize_item(key), ConsistentRead=consistent)
    item = response.get("Item")
    return deserialize_item(item) if item else None


def dynamodb_put_item(
    *,
    table: str,
    item: Mapping[str, Any],
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> None:
    """PutItem; the size is checked first, so an oversize item never reaches the wire."""
    wire, _size = serialize_checked(item)
    params: dict[str, Any] = {"TableName": table, "Item": wire, **_expression_kwargs(names, values)}
    if condition:
        params["ConditionExpression"] = condition
    _call("PutItem", table=table, **params)


def dynamodb_update_item(
    *,
    table: str,
    key: Mapping[str, Any],
    update: str,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    return_values: str = "ALL_NEW",
) -> dict[str, Any] | None:
    params: dict[str, Any] = {
        "TableName": table,
        "Key": serialize_item(key),
        "UpdateExpression": update,
        "ReturnValues": return_values,
        **_expression_kwargs(names, values),
    }
    if condition:
        params["ConditionExpression"] = condition
    response = _call("UpdateItem", table=table, **params)
    attributes = response.get("Attributes")
    return deserialize_item(attributes) if attributes else None


def dynamodb_delete_item(
    *,
    table: str,
    key: Mapping[str, Any],
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> None:
    params: dict[str, Any] = {"TableName": table, "Key": serialize_item(key), **_expression_kwargs(names, values)}
    if condition:
        params["ConditionExpression"] = condition
    _call("DeleteItem", table=table, **params)


@dataclass
class Page:
    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None
    scanned: int = 0


def _page(response: dict[str, Any]) -> Page:
    last = response.get("LastEvaluatedKey")
    return Page(
        items=[deserialize_item(item) for item in response.get("Items", [])],
        last_key=deserialize_item(last) if last else None,
        scanned=response.get("ScannedCount", 0),
    )


def dynamodb_query(
    *,
    table: str,
    key_condition: str,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    index: str | None = None,
    filter_expression: str | None = None,
    limit: int | None = None,
    forward: bool = True,
    start_key: Mapping[str, Any] | None = None,
    consistent: bool = False,
) -> Page:
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": key_condition,
        "ScanIndexForward": forward,
        **_expression_kwargs(names, values),
    }
    if index:
        params["IndexName"] = index
    else:
        params["ConsistentRead"] = consistent
    if filter_expression:
        params["FilterExpression"] = filter_expression
    if limit:
        params["Limit"] = limit
    if start_key:
        params["ExclusiveStartKey"] = serialize_item(start_key)
    return _page(_call("Query", table=table, **params))


def dynamodb_scan(
    *,
    table: str,
    filter_expression: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    limit: int | None = None,
    start_key: Mapping[str, Any] | None = None,
    segment: int | None = None,
    total_segments: int | None = None,
    consistent: bool = False,
) -> Page:
    params: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent, **_expression_kwargs(names, values)}
    if filter_expression:
        params["FilterExpression"] = filter_expression
    if limit:
        params["Limit"] = limit
    if start_key:
        params["ExclusiveStartKey"] = serialize_item(start_key)
    if total_segments:
        params["Segment"] = segment or 0
        params["TotalSegments"] = total_segments
    return _page(_call("Scan", table=table, **params))


def dynamodb_scan_segment(
    *, table: str, segment: int = 0, total_segments: int = 1, page_size: int | None = None, **kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Every item of one Scan segment, page by page (each segment pages with its own key)."""
    start_key = None
    while True:
        page = dynamodb_scan(
            table=table,
            segment=segment if total_segments > 1 else None,
            total_segments=total_segments if total_segments > 1 else None,
            start_key=start_key,
            limit=page_size,
            **kwargs,
        )
        yield from page.items
        if not page.last_key:
            return
        start_key = page.last_key


def dynamodb_parallel_scan(
    *, table: str, total_segments: int = 4, consume: Callable[[list[dict[str, Any]]], None], **kwargs: Any
) -> int:
    """Parallel Scan (Segment/TotalSegments): ``consume`` gets each page's items; returns the item count.

    ``consume`` is called from several threads at once and must be thread-safe.
    """

    def run(segment: int) -> int:
        count = 0
        start_key = None
        while True:
            page = dynamodb_scan(
                table=table,
                segment=segment if total_segments > 1 else None,
                total_segments=total_segments if total_segments > 1 else None,
                start_key=start_key,
                **kwargs,
            )
            consume(page.items)
            count += len(page.items)
            if not page.last_key:
                return count
            start_key = page.last_key

    if total_segments <= 1:
        return run(0)
    with ThreadPoolExecutor(max_workers=total_segments, thread_name_prefix="scan") as pool:
        return sum(pool.map(run, range(total_segments)))


def dynamodb_batch_get(
    *, table: str, keys: list[Mapping[str, Any]], consistent: bool = False, attributes: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100 keys, retrying UnprocessedKeys with backoff.

    ``attributes`` projects the items (key + a version, say): the endpoint then reads, sends and we
    parse a few bytes per item instead of whole sessions.
    """
    found: list[dict[str, Any]] = []
    projection: dict[str, Any] = {}
    if attributes:
        names = {f"#a{index}": name for index, name in enumerate(attributes)}
        projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
        pending: dict[str, Any] = {
            table: {
                "Keys": [serialize_item(k) for k in keys[start : start + BATCH_GET_MAX_KEYS]],
                "ConsistentRead": consistent,
                **projection,
            }
        }
        for attempt in range(BATCH_MAX_ATTEMPTS):
            response = _call("BatchGetItem", table=table, RequestItems=pending)
            found.extend(deserialize_item(item) for item in response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(backoff_delay(attempt))
        else:
            unread = len(pending.get(table, {}).get("Keys", []))
            raise DynamoDBThrottled(
                f"{unread} key(s) of {table} could not be read after {BATCH_MAX_ATTEMPTS} attempts."
            )
    return found


# --- Batch writer ---------------------------------------------------------------------------------


@dataclass
class BatchWriteResult:
    written: int = 0
    calls: int = 0
    unprocessed_retries: int = 0
    throttle_retries: int = 0
    bytes: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: BatchWriteResult) -> None:
        self.written += other.written
        self.calls += other.calls
        self.unprocessed_retries += other.unprocessed_retries
        self.throttle_retries += other.throttle_retries
        self.bytes += other.bytes
        self.duplicates.extend(other.duplicates)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter")."""
    return random.uniform(0, min(BATCH_BACKOFF_CAP_SECONDS, BATCH_BACKOFF_BASE_SECONDS * (2**attempt)))  # noqa: S311


_key_names_cache: dict[str, tuple[str, ...]] = {}


def table_key_names(table: str) -> tuple[str, ...]:
    """The key attribute names of a table (DescribeTable once per process and table)."""
    if table not in _key_names_cache:
        description = dynamodb_describe_table(table=table)
        if description is None:
            raise TableNotFound(ERR_TABLE_MISSING.format(table=table), details={"table": table})
        _key_names_cache[table] = tuple(k["AttributeName"] for k in description["KeySchema"])
    return _key_names_cache[table]


def _key_of(request: dict[str, Any], key_names: tuple[str, ...]) -> tuple[Any, ...]:
    # Key attributes are scalars ({"S": text}, {"N": text} or {"B": bytes}): their items are hashable.
    body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
    return tuple(tuple(body[name].items()) if name in body else None for name in key_names)


def _chunks(requests: Iterable[tuple[dict[str, Any], int]]) -> Iterator[list[tuple[dict[str, Any], int]]]:
    chunk: list[tuple[dict[str, Any], int]] = []
    size = 0
    for request, request_size in requests:
        if chunk and (len(chunk) == BATCH_WRITE_MAX_ITEMS or size + request_size > BATCH_WRITE_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((request, request_size))
        size += request_size
    if chunk:
        yield chunk


def dynamodb_batch_write(
    *,
    table: str,
    items: Iterable[Mapping[str, Any]] = (),
    delete_keys: Iterable[Mapping[str, Any]] = (),
    key_names: tuple[str, ...] | None = None,
    on_duplicate: str = "raise",
    max_attempts: int = BATCH_MAX_ATTEMPTS,
    on_chunk: Callable[[BatchWriteResult], None] | None = None,
    concurrency: int = 1,
) -> BatchWriteResult:
    """Write items (and deletes) with BatchWriteItem, 25 requests and at most 16 MB per call.

    Items stream through: at most one chunk is held at a time (``concurrency`` > 1: at most
    2 × concurrency, sent by that many threads, so our serialization overlaps the endpoint's work and
    the calls' latencies overlap each other). ``UnprocessedItems`` and throttling errors are retried
    with exponential backoff and jitter; after ``max_attempts`` a ``BatchWriteIncomplete`` names how
    many items were not written. Two requests with the same key in one chunk are refused by DynamoDB,
    so they are caught first: ``on_duplicate="raise"`` refuses the chunk, ``"skip"`` reports the later
    duplicates in ``result.duplicates`` and sends the rest.
    """
    key_names = key_names or table_key_names(table)

    def requests() -> Iterator[tuple[dict[str, Any], int]]:
        for item in items:
            wire, size = serialize_checked(item)
            yield {"PutRequest": {"Item": wire}}, size
        for key in delete_keys:
            yield {"DeleteRequest": {"Key": serialize_item(key)}}, item_size(key)

    def prepared() -> Iterator[tuple[list[dict[str, Any]], int, list[dict[str, Any]]]]:
        for chunk in _chunks(requests()):
            unique, duplicates = _unique_requests(chunk, key_names)
            if duplicates and on_duplicate == "raise":
                raise DuplicateKeysInBatch(
                    ERR_DUPLICATE_KEYS.format(count=len(duplicates), table=table), details={"keys": duplicates[:10]}
                )
            yield unique, sum(size for _request, size in chunk), duplicates

    total = BatchWriteResult()

    def collect(result: BatchWriteResult, size: int, duplicates: list[dict[str, Any]]) -> None:
        result.bytes = size
        result.duplicates = duplicates
        total.merge(result)
        if on_chunk:
            on_chunk(result)

    if concurrency <= 1:
        for unique, size, duplicates in prepared():
            collect(_send_chunk(table, unique, max_attempts, written_before=total.written), size, duplicates)
        return total
    _batch_write_concurrently(table, prepared(), max_attempts, concurrency, collect, total)
    return total


def _batch_write_concurrently(table, chunks, max_attempts, concurrency, collect, total) -> None:
    """Send chunks from ``concurrency`` threads; results are collected in order, in the caller's thread."""
    in_flight: deque = deque()
    failures: list[BatchWriteIncomplete] = []

    def settle(entry) -> None:
        future, size, duplicates = entry
        try:
            collect(future.result(), size, duplicates)
        except BatchWriteIncomplete as exc:
            total.written += exc.written
            failures.append(exc)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch-write") as pool:
        try:
            for unique, size, duplicates in chunks:
                if failures:
                    break
                in_flight.append((pool.submit(_send_chunk, table, unique, max_attempts, 0), size, duplicates))
                while len(in_flight) >= 2 * concurrency:
                    settle(in_flight.popleft())
        finally:
            while in_flight:  # every chunk already sent is waited for and counted, whatever happens
                settle(in_flight.popleft())
    if failures:
        unwritten = sum(exc.unwritten for exc in failures)
        raise BatchWriteIncomplete(
            ERR_BATCH_INCOMPLETE.format(count=unwritten, table=table, attempts=max_attempts),
            unwritten=unwritten,
            written=total.written,
        )


def _unique_requests(
    chunk: list[tuple[dict[str, Any], int]], key_names: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    seen: set[tuple[Any, ...]] = set()
    unique: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for request, _size in chunk:
        key = _key_of(request, key_names)
        if key in seen:
            body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
            duplicates.append(deserialize_item({name: body[name] for name in key_names if name in body}))
        else:
            seen.add(key)
            unique.append(request)
    return unique, duplicates


def _send_chunk(table: str, requests: list[dict[str, Any]], max_attempts: int, written_before: int) -> BatchWriteResult:
    result = BatchWriteResult()
    pending = requests
    attempt = 0
    while pending:
        try:
            response = _call("BatchWriteItem", table=table, RequestItems={table: pending})
            result.calls += 1
            unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            result.written += len(pending) - len(unprocessed)
            if unprocessed:
                result.unprocessed_retries += 1
                metrics.DYNAMODB_THROTTLES.labels("BatchWriteItem", table).inc()
                _notify_error("throttled", "BatchWriteItem", table, "UnprocessedItems")
        except DynamoDBThrottled:
            result.calls += 1
            result.throttle_retries += 1
            unprocessed = pending
        pending = unprocessed
        if not pending:
            break
        attempt += 1
        if attempt >= max_attempts:
            raise BatchWriteIncomplete(
                ERR_BATCH_INCOMPLETE.format(count=len(pending), table=table, attempts=attempt),
                unwritten=len(pending),
                written=written_before + result.written,
            )
        time.sleep(backoff_delay(attempt))
    return result


# --- Tables ---------------------------------------------------------------------------------------


def dynamodb_describe_table(*, table: str) -> dict[str, Any] | None:
    try:
        return _call("DescribeTable", table=table, TableName=table)["Table"]
    except TableNotFound:
        return None


def dynamodb_create_table(*, table: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    return _call("CreateTable", table=table, TableName=table, **definition)["TableDescription"]


def dynamodb_update_table(*, table: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    return _call("UpdateTable", table=table, TableName=table, **changes)["TableDescription"]


def dynamodb_delete_table(*, table: str) -> None:
    _call("DeleteTable", table=table, TableName=table)


def dynamodb_wait_until_active(*, table: str, timeout_seconds: int = 300) -> None:
    """CreateTable is asynchronous on real DynamoDB: wait until the table (and its GSIs) are ACTIVE."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.2
    while True:
        description = dynamodb_describe_table(table=table)
        if (
            description
            and description.get("TableStatus") == "ACTIVE"
            and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE"
                for index in description.get("GlobalSecondaryIndexes", [])
            )
        ):
            return
        if time.monotonic() > deadline:
            raise DynamoDBError(f"Table {table} did not become ACTIVE within {timeout_seconds} s.")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def dynamodb_ttl_attribute(*, table: str) -> str | None:
    """The enabled (or enabling) TTL attribute of a table, or None."""
    description = _call("DescribeTimeToLive", table=table, TableName=table)["TimeToLiveDescription"]
    if description.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
        return description.get("AttributeName")
    return None


def dynamodb_enable_ttl(*, table: str, attribute: str) -> None:
    _call(
        "UpdateTimeToLive",
        table=table,
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
    )


def dynamodb_list_tables() -> list[str]:
    names: list[str] = []
    params: dict[str, Any] = {}
    while True:
        response = _call("ListTables", **params)
        names.extend(response.get("TableNames", []))
        if not response.get("LastEvaluatedTableName"):
            return names
        params["ExclusiveStartTableName"] = response["LastEvaluatedTableName"]


def dynamodb_create_backup(*, table: str, name: str) -> str | None:
    """On-demand CreateBackup; returns the backup ARN, or None when the endpoint lacks the feature."""
    try:
        response = _call("CreateBackup", table=table, TableName=table, BackupName=name)
    except DynamoDBError as exc:
        if getattr(exc, "aws_code", "") in {
            "UnknownOperationException",
            "NotImplementedError",
            "ContinuousBackupsUnavailableException",
        }:
            return None
        raise
    return response["BackupDetails"]["BackupArn"]


# --- Paging cursors -------------------------------------------------------------------------------


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque, URL-safe cursor for a LastEvaluatedKey."""
    if not last_key:
        return None
    raw = json.dumps(serialize_item(last_key), sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return deserialize_item(json.loads(raw))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed("The cursor is not one this API issued.", details={"cursor": cursor}) from exc
