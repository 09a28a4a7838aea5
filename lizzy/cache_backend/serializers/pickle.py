"""Pickle, as Django's own cache backends store values: any picklable object comes back as it was.

Unpickling runs code, so this is the only product module that imports pickle, and ``loads`` is reached
only from ``codec.decode_value`` after the item's HMAC verified (tests/security/test_no_pickle.py).
"""

from __future__ import annotations

import pickle  # noqa: S403 - authenticated before every load; see the module docstring
from collections.abc import Mapping
from typing import Any

from lizzy.cache_backend.serializers.base import CacheSerializer


class PickleSerializer(CacheSerializer):
    name = "pickle"
    binary = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.protocol = int(options.get("PICKLE_PROTOCOL", pickle.HIGHEST_PROTOCOL))

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - the caller verified the HMAC of ``data`` first
