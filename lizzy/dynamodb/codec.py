"""The type codec: Python values to DynamoDB's wire format and back, and DynamoDB's item size.

One serializer (``_encode``: wire form and size in one walk) and one deserializer (``_decode``). They
keep boto3's TypeSerializer/TypeDeserializer output and add the conversions DynamoDB lacks: floats as
exact Decimals, datetimes as ISO 8601 UTC strings, dates and UUIDs as strings, NaN/Infinity refused,
numbers DynamoDB cannot hold refused rather than rounded (``number_refusal``: DynamoDB's documented limits,
not boto3's decimal context, which takes 1E-131 to 1E-165 and 1E+126, and refuses 10**40).
Integral numbers come back as ``int``, fractions as ``Decimal``, binaries as ``bytes``.

Speed: the common types of a session item or a migrated row (str, dict, small int, list, bool, None,
datetime) are tested first by exact type (the fast path), and no attribute path string is built while
walking: a refusal raises ``_Refused`` and each level adds its part of the path on the way out. This walk
is what ``serialize_checked`` always did (a 12.5 KB session: 347 → 135 µs for wire + size against the
generic TypeSerializer walk plus a separate size walk; docs/BENCHMARKS.md, benchmark 3); it now serves
every caller, including the keys and expression values that used to take the generic path.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary

from lizzy.dynamodb.errors import CodecError, ItemTooLarge

ITEM_MAX_BYTES = 400 * 1024  # DynamoDB's item size limit, attribute names included

ERR_NAN = "DynamoDB cannot store NaN or Infinity (attribute {path})."
ERR_EMPTY_SET = "DynamoDB cannot store an empty set (attribute {path})."
ERR_MIXED_SET = "A set must hold only strings, only numbers or only bytes (attribute {path})."
ERR_TYPE = "Cannot store a value of type {type} (attribute {path})."
ERR_NUMBER = "Number {value} cannot be stored in DynamoDB: {reason} (attribute {path})."
ERR_MAP_KEY = "Map keys must be strings (attribute {path})."
ERR_TEXT = "DynamoDB strings are UTF-8, which cannot hold the lone surrogate {char} at {position} (attribute {path})."
ERR_TOO_LARGE = "The item is {size} bytes; DynamoDB's limit is {limit} bytes (400 KB). Nothing was written."

_INT_LIMIT = 10**38  # DynamoDB numbers carry 38 significant digits; integers below this are exact

# DynamoDB's Number (developer guide, "Data types"): up to 38 digits of precision, leading and trailing zeros
# trimmed; positive 1E-130 to 9.9999999999999999999999999999999999999E+125, negative the same; zero.
NUMBER_DIGITS = 38
NUMBER_MAX_ADJUSTED = 125  # the exponent of the leading digit: magnitude below 1E+126
NUMBER_MIN_ADJUSTED = -130  # magnitude at least 1E-130
REASON_DIGITS = "more than 38 significant digits"
REASON_LARGE = "magnitude above 9.9999999999999999999999999999999999999E+125"
REASON_SMALL = "magnitude below 1E-130"


class _Refused(Exception):
    """A value the codec will not store; ``parts`` is its attribute path, innermost part first."""

    def __init__(self, template: str, **fields: Any) -> None:
        super().__init__(template)
        self.template = template
        self.fields = fields
        self.parts: list[str] = []

    def error(self, root: str) -> CodecError:
        path = root + "".join(reversed(self.parts))
        return CodecError(self.template.format(path=path, **self.fields), details={"attribute": path})


def iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as the seeds write timestamps; naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _text_size(text: str) -> int:
    """UTF-8 bytes of ``text``; refused when it holds a lone surrogate (``json.loads('"\\ud800"')`` makes one),
    which has no UTF-8 form: a bad value (a row error), not a UnicodeEncodeError that stops a whole page."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _Refused(ERR_TEXT, char=f"U+{ord(text[exc.start]):04X}", position=exc.start) from None


def _digits_size(digits: str) -> int:
    """DynamoDB's size of a number written with ``digits`` (no sign, no point): 1 byte per two
    significant digits + 1; leading and trailing zeros do not count."""
    return (len(digits.strip("0") or "0") + 1) // 2 + 1


def _scalar(value: Any) -> Any:
    """The storable form of a value that is not a container: str, bool, None, int, Decimal or bytes.

    The one place the conversions DynamoDB lacks are decided; ``to_storable`` and ``_encode`` share it.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _Refused(ERR_NAN)
        return Decimal(str(value))  # repr-exact, never the binary expansion
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Refused(ERR_NAN)
        return value
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
    raise _Refused(ERR_TYPE, type=type(value).__name__)


def number_refusal(value: int | Decimal) -> str | None:
    """Why DynamoDB refuses a finite number (``REASON_*``), or None when it stores it exactly."""
    try:
        _number(value)
    except _Refused as exc:
        return exc.fields["reason"]
    return None


def _number(value: int | Decimal, shown: Any = None) -> tuple[str, int]:
    """(wire text, size) of a finite number, exactly as DynamoDB stores it, or refused (naming ``shown``)."""
    if isinstance(value, int):
        wire = str(int(value))
        body = wire.lstrip("-")
        significant = max(len(body.rstrip("0")), 1)
        adjusted = len(body) - 1
    else:
        sign, digits, exponent = value.as_tuple()
        if digits == (0,):  # zero, whatever its exponent
            return (str(value) if NUMBER_MIN_ADJUSTED <= exponent <= NUMBER_MAX_ADJUSTED else "0"), 2
        written = significant = len(digits)
        while digits[significant - 1] == 0:  # a non-zero coefficient: stops at its last non-zero digit
            significant -= 1
        adjusted = exponent + written - 1
        wire = str(value)
        if written > NUMBER_DIGITS and significant <= NUMBER_DIGITS:  # trailing zeros past 38 digits: trimmed
            wire = str(Decimal((sign, digits[:significant], exponent + written - significant)))
    if significant > NUMBER_DIGITS:
        raise _Refused(ERR_NUMBER, value=value if shown is None else shown, reason=REASON_DIGITS)
    if adjusted > NUMBER_MAX_ADJUSTED:
        raise _Refused(ERR_NUMBER, value=value if shown is None else shown, reason=REASON_LARGE)
    if adjusted < NUMBER_MIN_ADJUSTED:
        raise _Refused(ERR_NUMBER, value=value if shown is None else shown, reason=REASON_SMALL)
    return wire, (significant + 1) // 2 + 1


def _encode(value: Any) -> tuple[dict[str, Any], int]:
    """(wire form, DynamoDB size) of one value, in one walk."""
    # Fast path: exact types first. Measured (issue 11, same process, best of 15 × 50 walks): a 12.7 KB
    # turn-log item 1.25-1.30 ms this way against 5.4-12.7 ms through the isinstance chain below alone
    # (isinstance against Mapping is an ABC check per value), a 1.2 KB session 20.6 against 155 µs;
    # benchmarks 1, 4 and 7 serialize every item through here.
    kind = type(value)
    if kind is str:  # ASCII inlined: the commonest value, a call less each
        return {"S": value}, len(value) if value.isascii() else _text_size(value)
    if kind is dict:
        return _encode_map(value)
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        text = str(value)
        return {"N": text}, _digits_size(text.lstrip("-"))
    if kind is list:
        items = []
        size = 3
        for index, item in enumerate(value):
            try:
                wire, item_size = _encode(item)
            except _Refused as exc:
                exc.parts.append(f"[{index}]")
                raise
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
    if kind is Decimal:  # a NUMERIC column's values: before the Mapping check, an ABC test per value
        if not value.is_finite():
            raise _Refused(ERR_NAN)
        text, size = _number(value)
        return {"N": text}, size
    if isinstance(value, Mapping):
        return _encode_map(value)
    if isinstance(value, (list, tuple)):
        return _encode(list(value))
    if isinstance(value, (set, frozenset)):
        return _encode_set(value)
    storable = _scalar(value)
    if isinstance(storable, bool):
        return {"BOOL": storable}, 1
    if isinstance(storable, (int, Decimal)):
        text, size = _number(storable, value)
        return {"N": text}, size
    if isinstance(storable, str):
        return {"S": storable}, _text_size(storable)
    return {"B": storable}, len(storable)


def _encode_map(value: Mapping[Any, Any]) -> tuple[dict[str, Any], int]:
    out = {}
    size = 3
    for key, item in value.items():
        if not isinstance(key, str):
            raise _Refused(ERR_MAP_KEY)
        try:
            out[key], item_size = _encode(item)
            size += 1 + _text_size(key) + item_size
        except _Refused as exc:
            exc.parts.append(f".{key}")
            raise
    return {"M": out}, size


def _encode_set(value: set[Any] | frozenset[Any]) -> tuple[dict[str, Any], int]:
    if not value:
        raise _Refused(ERR_EMPTY_SET)
    try:
        members = {_scalar(member) for member in value}
    except _Refused as exc:
        exc.parts.append("{}")
        raise
    if all(isinstance(m, str) for m in members):
        return {"SS": list(members)}, sum(_text_size(m) for m in members)
    if all(isinstance(m, bytes) for m in members):
        return {"BS": list(members)}, sum(len(m) for m in members)
    if all(isinstance(m, (int, Decimal)) and not isinstance(m, bool) for m in members):
        try:
            numbers = [_number(m) for m in members]
        except _Refused as exc:
            exc.parts.append("{}")
            raise
        return {"NS": [text for text, _size in numbers]}, sum(size for _text, size in numbers)
    raise _Refused(ERR_MIXED_SET)


def _encode_item(item: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], int]:
    wire: dict[str, dict[str, Any]] = {}
    size = 0
    for name, value in item.items():
        if not isinstance(name, str):
            raise CodecError(ERR_MAP_KEY.format(path="$"), details={"attribute": "$"})
        try:
            wire[name], value_size = _encode(value)
            size += (len(name) if name.isascii() else _text_size(name)) + value_size
        except _Refused as exc:
            raise exc.error(name) from None
    return wire, size


def serialize_value(value: Any, path: str = "$") -> dict[str, Any]:
    """The wire form of one value; a refusal names ``path`` (and the nested attribute within it)."""
    try:
        return _encode(value)[0]
    except _Refused as exc:
        raise exc.error(path) from None


def serialize_item(item: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return _encode_item(item)[0]


def serialize_checked(item: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], int]:
    """(wire item, size): serialized and measured in one walk, refused if over 400 KB.

    Measuring while serializing spares a second walk over every value, which was a third of a
    migration's CPU (docs/BENCHMARKS.md, benchmark 4).
    """
    wire, size = _encode_item(item)
    if size > ITEM_MAX_BYTES:
        raise ItemTooLarge(
            ERR_TOO_LARGE.format(size=size, limit=ITEM_MAX_BYTES), details={"size": size, "limit": ITEM_MAX_BYTES}
        )
    return wire, size


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for an item (the documented item-size rules, attribute names included)."""
    return _encode_item(item)[1]


def check_item_size(item: Mapping[str, Any]) -> int:
    return serialize_checked(item)[1]


def to_storable(value: Any, path: str = "$") -> Any:
    """A Python value as the codec stores it (floats as Decimals, datetimes as strings...), or refused.

    For showing a value the way it will be stored (JSON previews); writes use ``serialize_*``.
    """
    try:
        return _storable(value)
    except _Refused as exc:
        raise exc.error(path) from None


def _storable(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused(ERR_MAP_KEY)
            try:
                out[key] = _storable(item)
            except _Refused as exc:
                exc.parts.append(f".{key}")
                raise
        return out
    if isinstance(value, (list, tuple)):
        out_list = []
        for index, item in enumerate(value):
            try:
                out_list.append(_storable(item))
            except _Refused as exc:
                exc.parts.append(f"[{index}]")
                raise
        return out_list
    if isinstance(value, (set, frozenset)):
        _encode_set(value)  # the same refusals as a write: empty, mixed, unstorable members
        return {_scalar(member) for member in value}
    return _scalar(value)


def _decode_number(text: str) -> int | Decimal:
    if text.isdecimal() or (text[:1] == "-" and text[1:].isdecimal()):
        return int(text)
    number = Decimal(text)  # exact, in no context: DynamoDB sent it, so it holds 38 digits from 1E-130 on
    if not number.is_finite():  # DynamoDB never sends one; a forged cursor might
        raise ValueError(f"{text!r} is not a DynamoDB number")
    return int(number) if number.as_tuple().exponent == 0 else number


def _decode(value: Mapping[str, Any]) -> Any:
    ((kind, body),) = value.items()
    if kind == "S":
        return body
    if kind == "M":
        return {key: _decode(item) for key, item in body.items()}
    if kind == "N":
        return _decode_number(body)
    if kind == "L":
        return [_decode(item) for item in body]
    if kind == "BOOL":
        return body
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(body)
    if kind == "SS":
        return set(body)
    if kind == "NS":
        return {_decode_number(member) for member in body}
    if kind == "BS":
        return {bytes(member) for member in body}
    raise TypeError(f"DynamoDB type {kind!r} is not supported")


def deserialize_value(value: Mapping[str, Any]) -> Any:
    return _decode(value)


def deserialize_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: _decode(value) for name, value in item.items()}
