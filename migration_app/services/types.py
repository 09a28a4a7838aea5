"""Source types → DynamoDB types: the one table every conversion, check and validation follows.

Each source column's declared type falls into a *family*; the family says which DynamoDB type the
attribute gets and which exact value (the type table in docs/MIGRATIONS.md). A type in no family is
refused by ``--check`` before anything is written, naming the column: nothing is ever converted by
guesswork. Values are converted by their Python type (what the source reader hands over), so a
``source-query`` column without a declared type still gets the same conversion.

* integer, decimal, float → N with the digits exactly (38 significant digits at most; more is a row
  error, and ``--check`` probes the source for such values where the engine can);
* boolean → BOOL; bytea/BLOB/binary → B;
* text, uuid, enum, inet/cidr/macaddr, money-as-text, ranges, intervals, MySQL SET → S (the documented
  text form);
* timestamp (with or without time zone; naive means UTC) → S ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: always six
  fraction digits, so strings built from them sort in time order; date → S ``YYYY-MM-DD``; time → S
  ``HH:MM:SS.ffffff`` (plus ``+HH:MM`` with a time zone);
* json/jsonb → M / L with numbers exact; arrays of any supported element type → L.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lizzy.errors import ApplicationError

DYNAMODB_DIGITS = 38  # DynamoDB numbers: up to 38 significant digits
DYNAMODB_MAX_EXPONENT = 125  # magnitude below 1E+126
DYNAMODB_MIN_EXPONENT = -130  # magnitude at least 1E-130
EXACT = decimal.Context(prec=DYNAMODB_DIGITS, traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation])

ERR_DIGITS = "{path}: {value} has {digits} significant digits; DynamoDB numbers hold {limit} exactly"
ERR_MAGNITUDE = "{path}: {value} is outside DynamoDB's number range (1E-130 to 9.99E+125)"
ERR_NOT_FINITE = "{path}: NaN and Infinity cannot be stored in DynamoDB"
ERR_UNSUPPORTED_VALUE = "{path}: a {type} value has no documented conversion"
ERR_UNREADABLE = "column {column!r} ({declared}): {problem}"
ERR_TYPE_REFUSED = "column {column!r} has type {type!r}, which has no documented conversion to DynamoDB"

# family → DynamoDB type of the attribute
FAMILY_TYPES = {
    "integer": "N",
    "decimal": "N",
    "float": "N",
    "boolean": "BOOL",
    "binary": "B",
    "text": "S",
    "uuid": "S",
    "timestamp": "S",
    "date": "S",
    "time": "S",
    "interval": "S",
    "json": "M|L",
    "array": "L",
    "any": "?",  # SQLite columns without a declared type: the value's own type decides
}

# Ordered: the first match wins ("timestamp with time zone" before "time", "interval" before "int").
_FAMILY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("array", re.compile(r"(\[\]|\bARRAY\b|^_|^LIST\b|\[\d*\]$)", re.IGNORECASE)),
    ("interval", re.compile(r"^INTERVAL\b", re.IGNORECASE)),
    ("boolean", re.compile(r"^(BOOL|BOOLEAN|TINYINT\(1\)|BIT\(1\))(\s|$)", re.IGNORECASE)),
    ("timestamp", re.compile(r"^(TIMESTAMP|DATETIME|TIMESTAMPTZ)", re.IGNORECASE)),
    ("date", re.compile(r"^DATE$", re.IGNORECASE)),
    ("time", re.compile(r"^(TIME|TIMETZ)\b", re.IGNORECASE)),
    (
        "integer",
        re.compile(
            r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT|HUGEINT|UHUGEINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT|"
            r"INT2|INT4|INT8|SERIAL|BIGSERIAL|SMALLSERIAL|YEAR|OID)\b",
            re.IGNORECASE,
        ),
    ),
    ("decimal", re.compile(r"^(NUMERIC|DECIMAL|DEC|MONEY)\b", re.IGNORECASE)),
    ("float", re.compile(r"^(REAL|DOUBLE|FLOAT|FLOAT4|FLOAT8)\b", re.IGNORECASE)),
    ("json", re.compile(r"^JSONB?$", re.IGNORECASE)),
    ("binary", re.compile(r"^(BYTEA|BLOB|TINYBLOB|MEDIUMBLOB|LONGBLOB|BINARY|VARBINARY|BYTES)\b", re.IGNORECASE)),
    ("uuid", re.compile(r"^UUID$", re.IGNORECASE)),
    (
        "text",
        re.compile(
            r"^(TEXT|TINYTEXT|MEDIUMTEXT|LONGTEXT|CHAR|CHARACTER|VARCHAR|NCHAR|NVARCHAR|STRING|CITEXT|CLOB|NAME|"
            r"ENUM|SET|INET|CIDR|MACADDR|MACADDR8|INT4RANGE|INT8RANGE|NUMRANGE|TSRANGE|TSTZRANGE|DATERANGE|"
            r"INT4MULTIRANGE|INT8MULTIRANGE|NUMMULTIRANGE|TSMULTIRANGE|TSTZMULTIRANGE|DATEMULTIRANGE|USER-DEFINED-ENUM)\b",
            re.IGNORECASE,
        ),
    ),
]


class TypeRefused(ApplicationError):
    code = "type_refused"


class ValueRefused(ApplicationError):
    """One value cannot be stored exactly: a row error (the row goes to the quarantine), not a crash."""

    code = "value_refused"


def type_family(declared: str) -> str | None:
    """The family of a declared type (as the source reports it), or None when it has no conversion."""
    text = (declared or "").strip()
    if not text:
        return "any"
    for family, pattern in _FAMILY_PATTERNS:
        if pattern.search(text):
            return family
    return None


def timestamp_text(value: dt.datetime) -> str:
    """UTC, six fraction digits, ``Z``: every timestamp has the same width, so they sort as text."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    # isoformat is C: a tenth of the cost of formatting the fields in Python (one per migrated timestamp).
    # It writes years below 1000 with four digits too, so every timestamp has the same width.
    return value.isoformat(timespec="microseconds") + "Z"


def time_text(value: dt.time) -> str:
    text = f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    offset = value.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text


def interval_text(value: dt.timedelta) -> str:
    """ISO 8601 duration of a timedelta (DuckDB/MySQL TIME spans): ``P1DT2H3M4.000005S``."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, whole = divmod(rest, 60)
    fraction = f"{whole}.{value.microseconds:06d}" if value.microseconds else f"{whole}"
    return f"{sign}P{value.days}DT{hours}H{minutes}M{fraction}S"


class Unreadable:
    """A source value its declared type cannot read (SQLite ``'abc'`` in a DECIMAL column, ``2`` in a BOOLEAN).

    Source readers hand it over in place of the value, so the row, not the run, fails: every way the
    mapping reads a value (copied, ``str()`` in a template, a typed leaf) refuses it with ``ValueRefused``,
    and the row goes to the quarantine with its source key. ``raw`` is what the driver returned.
    """

    __slots__ = ("column", "declared", "problem", "raw")

    def __init__(self, *, column: str, declared: str, raw: Any, problem: str) -> None:
        self.column, self.declared, self.raw, self.problem = column, declared, raw, problem

    def refusal(self, path: str | None = None) -> ValueRefused:
        """The row error; ``path`` names the value when the reader did not know its column (an array element)."""
        column = self.column or path or "?"
        return ValueRefused(ERR_UNREADABLE.format(column=column, declared=self.declared, problem=self.problem))

    def __str__(self) -> str:
        raise self.refusal()

    def __repr__(self) -> str:
        return f"Unreadable({self.column!r}, {self.raw!r})"


def significant_digits(value: Decimal) -> int:
    digits = "".join(map(str, value.as_tuple().digits)).strip("0")
    return len(digits) or 1


def exact_number(value: Decimal | int, path: str) -> Decimal | int:
    """The number unchanged when DynamoDB holds it exactly; ValueRefused otherwise (never rounded)."""
    if isinstance(value, int):
        if abs(value) >= 10**DYNAMODB_DIGITS:
            if significant_digits(Decimal(value)) > DYNAMODB_DIGITS:
                raise ValueRefused(
                    ERR_DIGITS.format(
                        path=path, value=value, digits=significant_digits(Decimal(value)), limit=DYNAMODB_DIGITS
                    )
                )
            if abs(value) >= 10 ** (DYNAMODB_MAX_EXPONENT + 1):  # 1E+130 from a JSON document is an int here
                raise ValueRefused(ERR_MAGNITUDE.format(path=path, value=f"{Decimal(value):.3E}"))
        return value
    if not value.is_finite():
        raise ValueRefused(ERR_NOT_FINITE.format(path=path))
    if value.is_zero():
        return value
    if len(value.as_tuple().digits) > DYNAMODB_DIGITS:  # cheap test first: at most 38 digits written
        digits = significant_digits(value)
        if digits > DYNAMODB_DIGITS:
            raise ValueRefused(ERR_DIGITS.format(path=path, value=value, digits=digits, limit=DYNAMODB_DIGITS))
    adjusted = value.adjusted()
    if adjusted > DYNAMODB_MAX_EXPONENT or adjusted < DYNAMODB_MIN_EXPONENT:
        raise ValueRefused(ERR_MAGNITUDE.format(path=path, value=value))
    return value  # the writer's codec takes exactly these (lizzy.dynamodb.number_refusal; a property test says so)


_KEPT = frozenset({str, bool, type(None)})  # what ``storable`` returns unchanged, whatever the path


def storable(value: Any, path: str) -> Any:
    """A source value as the item holds it (see the module docstring); ValueRefused when it cannot be exact."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value
    if kind is dt.datetime:  # the commonest conversion first
        return timestamp_text(value)
    if kind is int:
        return value if -(10**DYNAMODB_DIGITS) < value < 10**DYNAMODB_DIGITS else exact_number(value, path)
    if kind is Decimal:
        return exact_number(value, path)
    if kind is float:
        if math.isnan(value) or math.isinf(value):
            raise ValueRefused(ERR_NOT_FINITE.format(path=path))
        return exact_number(Decimal(repr(value)), path)  # the shortest repr, never the binary expansion
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return time_text(value)
    if isinstance(value, dt.timedelta):
        return interval_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network)):
        return str(value)
    if isinstance(value, (ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    if isinstance(value, Mapping):
        return {
            str(key): item if type(item) in _KEPT else storable(item, f"{path}.{key}") for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):  # members kept as they are skip building their path (a JSON column's)
        return [item if type(item) in _KEPT else storable(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):  # MySQL SET columns come back as sets of strings
        return ",".join(sorted(str(member) for member in value))
    if isinstance(value, Unreadable):
        raise value.refusal(path)
    raise ValueRefused(ERR_UNSUPPORTED_VALUE.format(path=path, type=kind.__name__))
