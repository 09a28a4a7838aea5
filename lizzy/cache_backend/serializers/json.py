"""JSON: no code runs on read, the data is readable text, but only JSON's types come back.

What it cannot hold (docs/CACHE.md): tuples come back as lists, dict keys that are not strings as
strings (``{1: "a"}`` as ``{"1": "a"}``); bytes, sets, datetimes, Decimals, model instances, functions,
classes and ``HttpResponse`` objects are refused (``TypeError`` from ``set``), so ``cache_page`` and the
cache middleware do not work on a JSON cache; NaN and infinities are refused (``ValueError``).
"""

from __future__ import annotations

import json
from typing import Any

from lizzy.cache_backend.serializers.base import CacheSerializer


class JSONSerializer(CacheSerializer):
    name = "json"
    binary = False

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)
