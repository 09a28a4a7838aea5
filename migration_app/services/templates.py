"""``${...}`` templates: DMS's ``${column}`` plus the functions DMS lacks.

DMS substitutes column values and nothing else. Seed 002's keys need more (a keyed hash of the
e-mail, epoch seconds for ``ttl``, ISO timestamps inside sort keys), so an expression may call
functions: ``${hmac_sha256(lower(trim(email)))}``, ``${default(status, 'active')}``. Arguments are
column names, quoted strings, numbers or nested calls. Templates are parsed once, when the mapping is
checked, so a typo fails before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from lizzy.cache_backend import cache_item_attributes, cache_namespace, cache_pk, is_hashed
from lizzy.dynamodb import to_storable
from lizzy.errors import ApplicationError
from lizzy.phone import normalize_phone
from migration_app.services.types import timestamp_text

ERR_UNCLOSED = "unclosed ${ in template {template!r}"
ERR_SYNTAX = "cannot read expression {expression!r}: {problem}"
ERR_UNKNOWN_FUNCTION = "unknown function {name!r} (known: {known})"
ERR_ARITY = "function {name!r} takes {expected} argument(s), got {got}"
ERR_NOT_A_TIME = "{value!r} is not a time: use ISO 8601 or epoch seconds"
ERR_CACHE_ATTRIBUTE = "cache_value's first argument is 'data', 'fmt' or 'sig', not {attribute!r}"
CACHE_VALUE_ATTRIBUTES = ("data", "fmt", "sig")
ERR_NO_HMAC_KEY = "hmac_sha256 needs the secret LIZZY_MAPPING_HMAC_KEY, which is not set"


class TemplateError(ApplicationError):
    code = "template_error"


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


def _text(value: Any) -> str:
    """How a value reads inside a string template (NULL reads as an empty string, as in DMS)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    if isinstance(value, (dt.date, uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        return _json(value)
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(to_storable(value), sort_keys=True, separators=(",", ":"), default=str)


def _parse_time(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    try:
        if isinstance(value, (int, float, Decimal)):
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        # A row whose value is not a time is refused with a mapping error, not a crash of the whole run.
        raise TemplateError(ERR_NOT_A_TIME.format(value=str(value)[:40])) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _hmac_sha256(value: Any) -> str | None:
    if value is None:
        return None
    key = settings.LIZZY_MAPPING_HMAC_KEY
    if not key:
        raise TemplateError(ERR_NO_HMAC_KEY)
    return hmac.new(key.encode(), _text(value).encode(), hashlib.sha256).hexdigest()


def _epoch(value: Any) -> int | None:
    moment = _parse_time(value)
    return int(moment.timestamp()) if moment else None


def _iso8601(value: Any) -> str | None:
    moment = _parse_time(value)
    return timestamp_text(moment) if moment else None


def _e164(value: Any) -> str | None:
    return normalize_phone(_text(value)) if value not in (None, "") else None


def _cache_value(attribute: Any, serializer: Any, key: Any, value: Any) -> Any:
    """``data``, ``fmt`` or ``sig`` of the DynamoDB cache entry ``key`` holding ``value`` (issue 17's plan)."""
    if attribute not in CACHE_VALUE_ATTRIBUTES:
        raise TemplateError(ERR_CACHE_ATTRIBUTE.format(attribute=attribute))
    if key is None:
        return None
    try:
        return cache_item_attributes(full_key=_text(key), value=value, serializer_name=_text(serializer))[attribute]
    except ImproperlyConfigured as exc:  # a serializer name that is neither pickle, json nor a CacheSerializer
        raise TemplateError(str(exc)) from exc


def _null_safe(function: Callable[[str], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else function(_text(value))


FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "lower": (1, _null_safe(str.lower)),
    "upper": (1, _null_safe(str.upper)),
    "trim": (1, _null_safe(str.strip)),
    "sha256": (1, _null_safe(lambda text: hashlib.sha256(text.encode()).hexdigest())),
    "hmac_sha256": (1, _hmac_sha256),
    "e164": (1, _e164),
    "epoch": (1, _epoch),
    "iso8601": (1, _iso8601),
    "json": (1, lambda value: None if value is None else _json(value)),
    "default": (2, lambda value, fallback: fallback if value in (None, "") else value),
    "str": (1, lambda value: None if value is None else _text(value)),
    # The DynamoDB cache's item layout (lizzy.cache_backend), for moving a Django cache into its table
    "cache_pk": (1, _null_safe(cache_pk)),
    "cache_long_key": (1, lambda key: _text(key) if key is not None and is_hashed(_text(key)) else None),
    "cache_ns": (1, lambda prefix: cache_namespace(key_prefix=_text(prefix))),
    "cache_value": (4, _cache_value),
}

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w]*)|(?P<op>[(),]))"
)


def parse_expression(expression: str) -> Any:
    """Parse what sits between ``${`` and ``}``. Without parentheses it is a column name, verbatim."""
    if "(" not in expression:
        return Column(expression)
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise TemplateError(ERR_SYNTAX.format(expression=expression, problem=f"unexpected {text[position:]!r}"))
        kind = match.lastgroup or "op"
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    node, rest = _parse_tokens(tokens, expression)
    if rest:
        raise TemplateError(ERR_SYNTAX.format(expression=expression, problem="trailing text"))
    return node


def _parse_tokens(tokens: list[tuple[str, str]], expression: str) -> tuple[Any, list[tuple[str, str]]]:
    if not tokens:
        raise TemplateError(ERR_SYNTAX.format(expression=expression, problem="missing value"))
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "string":
        return Literal(value[1:-1].replace("\\'", "'")), rest
    if kind == "number":
        return Literal(Decimal(value) if "." in value else int(value)), rest
    if kind != "name":
        raise TemplateError(ERR_SYNTAX.format(expression=expression, problem=f"unexpected {value!r}"))
    if not rest or rest[0] != ("op", "("):
        return Column(value), rest
    if value not in FUNCTIONS:
        raise TemplateError(ERR_UNKNOWN_FUNCTION.format(name=value, known=", ".join(sorted(FUNCTIONS))))
    rest = rest[1:]
    args = []
    while rest and rest[0] != ("op", ")"):
        arg, rest = _parse_tokens(rest, expression)
        args.append(arg)
        if rest and rest[0] == ("op", ","):
            rest = rest[1:]
    if not rest:
        raise TemplateError(ERR_SYNTAX.format(expression=expression, problem="missing )"))
    expected = FUNCTIONS[value][0]
    if len(args) != expected:
        raise TemplateError(ERR_ARITY.format(name=value, expected=expected, got=len(args)))
    return Call(value, tuple(args)), rest[1:]


def evaluate(node: Any, row: Mapping[str, Any]) -> Any:
    if isinstance(node, Column):
        return row.get(node.name)
    if isinstance(node, Literal):
        return node.value
    return FUNCTIONS[node.name][1](*(evaluate(arg, row) for arg in node.args))


def columns_of(node: Any) -> set[str]:
    if isinstance(node, Column):
        return {node.name}
    if isinstance(node, Call):
        return set().union(*(columns_of(arg) for arg in node.args)) if node.args else set()
    return set()


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and expressions, in order."""

    source: str
    parts: tuple[Any, ...]  # str (literal) or an expression node

    @classmethod
    def parse(cls, source: str) -> Template:
        parts: list[Any] = []
        position = 0
        while True:
            start = source.find("${", position)
            if start < 0:
                if position < len(source):
                    parts.append(source[position:])
                break
            if start > position:
                parts.append(source[position:start])
            end = source.find("}", start)
            if end < 0:
                raise TemplateError(ERR_UNCLOSED.format(template=source))
            parts.append(parse_expression(source[start + 2 : end]))
            position = end + 1
        return cls(source, tuple(parts))

    @property
    def single(self) -> bool:
        """The whole template is one expression: its value keeps its type (numbers stay numbers)."""
        return len(self.parts) == 1 and not isinstance(self.parts[0], str)

    def columns(self) -> set[str]:
        found: set[str] = set()
        for part in self.parts:
            if not isinstance(part, str):
                found |= columns_of(part)
        return found

    def value(self, row: Mapping[str, Any]) -> Any:
        if self.single:
            return evaluate(self.parts[0], row)
        return self.render(row)

    def render(self, row: Mapping[str, Any]) -> str:
        return "".join(part if isinstance(part, str) else _text(evaluate(part, row)) for part in self.parts)
