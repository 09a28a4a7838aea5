"""One canonical form for items, so that "equal in DynamoDB" means "equal hash" here.

DynamoDB normalises numbers (``1.50`` comes back as ``1.5``) and does not order sets, so items are
compared in DynamoDB JSON with numbers normalised and set members sorted; binary travels as base64
(the format of DynamoDB's own S3 exports).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lizzy.dynamodb import deserialize_item, serialize_item
from lizzy.dynamodb.errors import CodecError


def canonical_number(text: str) -> str:
    """The shortest plain form of a number (``1.50`` → ``1.5``, ``1E+2`` → ``100``), computed from its digits.

    No ``decimal`` context is involved: ``normalize()`` and ``quantize()`` in the default 28-digit context
    rounded (or raised on) DynamoDB's 29- to 38-digit numbers, so a change in the 30th digit hashed equal.
    """
    sign, digits, exponent = Decimal(text).as_tuple()
    coefficient = "".join(map(str, digits)).lstrip("0")
    if not coefficient:
        return "0"
    stripped = coefficient.rstrip("0")
    exponent += len(coefficient) - len(stripped)
    if exponent >= 0:
        plain = stripped + "0" * exponent
    elif len(stripped) > -exponent:
        plain = stripped[:exponent] + "." + stripped[exponent:]
    else:
        plain = "0." + "0" * (-exponent - len(stripped)) + stripped
    return ("-" if sign else "") + plain


_number = canonical_number


def to_json_value(typed: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-typed value (``{"N": "1.50"}``) in canonical, JSON-serialisable form."""
    ((kind, value),) = typed.items()
    if kind == "N":
        return {"N": _number(value)}
    if kind == "NS":
        return {"NS": sorted((_number(v) for v in value), key=Decimal)}
    if kind == "SS":
        return {"SS": sorted(value)}
    if kind == "B":
        return {"B": base64.b64encode(bytes(value)).decode()}
    if kind == "BS":
        return {"BS": sorted(base64.b64encode(bytes(v)).decode() for v in value)}
    if kind == "M":
        return {"M": {key: to_json_value(item) for key, item in value.items()}}
    if kind == "L":
        return {"L": [to_json_value(item) for item in value]}
    return {kind: value}


def from_json_value(typed: Mapping[str, Any]) -> dict[str, Any]:
    ((kind, value),) = typed.items()
    if kind == "B":
        return {"B": base64.b64decode(value)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in value]}
    if kind == "M":
        return {"M": {key: from_json_value(item) for key, item in value.items()}}
    if kind == "L":
        return {"L": [from_json_value(item) for item in value]}
    return {kind: value}


def item_to_json(item: Mapping[str, Any]) -> dict[str, Any]:
    try:
        serialized = serialize_item(item)
    except CodecError as refused:
        # DynamoDB's "1E+40" reads back as the int 10**40, whose 41 written digits the codec's 38-digit context
        # refuses to write again: the same number with its zeros as an exponent is what DynamoDB holds.
        try:
            serialized = serialize_item(_exponent_form(item))
        except ArithmeticError:  # more than 38 significant digits: really not a DynamoDB number
            raise refused from None
    return {name: to_json_value(value) for name, value in serialized.items()}


def _exponent_form(value: Any) -> Any:
    if type(value) is int and abs(value) >= 10**38:
        digits = str(value)
        significant = digits.rstrip("0")
        return Decimal(f"{significant}E{len(digits) - len(significant)}")  # exact, whatever its length
    if isinstance(value, Mapping):
        return {key: _exponent_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exponent_form(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return {_exponent_form(item) for item in value}
    return value


def item_from_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """An item from its JSON form, ready to be written again (a restore): ``1E+40`` stays ``1E+40``."""
    return _exponent_form(deserialize_item({name: from_json_value(value) for name, value in document.items()}))


def canonical_text(item: Mapping[str, Any]) -> str:
    return json.dumps(item_to_json(item), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_hash(item: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical_text(item).encode()).digest()


def key_text(item: Mapping[str, Any], key_names: tuple[str, ...]) -> str:
    return canonical_text({name: item[name] for name in key_names if name in item})


class SetChecksum:
    """An order-independent checksum of a set of items (sum of SHA-256 values mod 2**256).

    Scan order differs between a table and its export, so the checksum must not depend on it.
    """

    MODULUS = 2**256

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add_text(self, text: str) -> None:
        self.total = (self.total + int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")) % self.MODULUS
        self.count += 1

    def add(self, item: Mapping[str, Any]) -> None:
        self.add_text(canonical_text(item))

    def hexdigest(self) -> str:
        return f"{self.total:064x}"
