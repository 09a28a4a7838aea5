"""What every cache serializer does: turn a value into bytes and back.

The backend signs what ``dumps`` returns and calls ``loads`` only on bytes whose signature verified
(``lizzy.cache_backend.codec``), so a serializer never sees data it did not write itself. ``name`` is
stored with every item: a cache configured with one serializer never hands another's data to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CacheSerializer:
    name: str = ""
    binary: bool = True  # False: ``data`` is stored as a String (UTF-8 text), readable with the AWS console

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    def dumps(self, value: Any) -> bytes:
        """Bytes for ``value``; raises (TypeError, ValueError, pickle.PicklingError, ...) when it cannot."""
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        """The value back; only ever called on authenticated bytes."""
        raise NotImplementedError
