"""JSON read with exact numbers: ``json.loads(text, parse_float=Decimal)`` without its cost per call.

``json.loads`` with an option builds a ``JSONDecoder`` on every call: a third of reading a JSON column's
value (profiled at 20,000 rows of the migration benchmark's table, one JSON column: 49 of 132 samples of the
source read). One decoder, built once, reads every JSON document the product parses: source columns, mapping
templates, session documents in Redis.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_DECODER = json.JSONDecoder(parse_float=Decimal)


def exact_json(text: str | bytes | bytearray) -> Any:
    """What ``json.loads(text, parse_float=Decimal)`` gives, errors included: numbers with a fraction as exact
    Decimals (as DynamoDB returns them), bytes in whichever of UTF-8/16/32 json detects."""
    if isinstance(text, str):
        if not text.startswith("\ufeff"):
            return _DECODER.decode(text)
    elif isinstance(text, (bytes, bytearray)):
        return _DECODER.decode(text.decode(json.detect_encoding(text), "surrogatepass"))
    return json.loads(text, parse_float=Decimal)  # a BOM's error and a wrong type's, worded as json's own
