"""The type codec: Python values to DynamoDB's wire format and back, and DynamoDB's item size.

boto3's TypeSerializer/TypeDeserializer plus the conversions DynamoDB lacks: floats as exact Decimals,
datetimes as ISO 8601 UTC strings, NaN/Infinity refused.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from lizzy.dynamodb.errors import CodecError, ItemTooLarge

ITEM_MAX_BYTES = 400 * 1024  # DynamoDB's item size limit, attribute names included

ERR_NAN = "DynamoDB cannot store NaN or Infinity (attribute {path})."
ERR_EMPTY_SET = "DynamoDB cannot store an empty set (attribute {path})."
ERR_MIXED_SET = "A set must hold only strings, only numbers or only bytes (attribute {path})."
ERR_TYPE = "Cannot store a value of type {type} (attribute {path})."
ERR_NUMBER = "Number {value} is outside what DynamoDB can store exactly (38 digits) (attribute {path})."
ERR_MAP_KEY = "Map keys must be strings (attribute {path})."
ERR_TOO_LARGE = "The item is {size} bytes; DynamoDB's limit is {limit} bytes (400 KB). Nothing was written."

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
