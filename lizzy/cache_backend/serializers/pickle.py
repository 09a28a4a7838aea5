"""Pickle, as Django's own cache backends store values: any picklable object comes back as it was.

Unpickling runs code, so this is the only product module that imports pickle, and ``loads`` is reached
only from ``codec.decode_value`` after the item's HMAC verified (tests/security/test_no_pickle.py).
"""

from __future__ import annotations

import io
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


class _CanonicalPickler(pickle._Pickler):  # noqa: SLF001 - the Python pickler: its dispatch table can be extended
    """Pickles a set or frozenset with its members sorted (by their own canonical pickles), so one value
    gives the same bytes in every process: a set's iteration order follows string hashes, which
    ``PYTHONHASHSEED`` randomizes per process. The bytes load back with ``pickle.loads`` as the same value."""

    dispatch = pickle._Pickler.dispatch.copy()  # noqa: SLF001

    def _save_set(self, obj: set[Any]) -> None:
        members = sorted(obj, key=self._order)
        if self.proto < 4:
            self.save_reduce(set, (members,), obj=obj)
            return
        self.write(pickle.EMPTY_SET)
        self.memoize(obj)
        for start in range(0, len(members), self._BATCHSIZE):
            self.write(pickle.MARK)
            for member in members[start : start + self._BATCHSIZE]:
                self.save(member)
            self.write(pickle.ADDITEMS)

    def _save_frozenset(self, obj: frozenset[Any]) -> None:
        members = sorted(obj, key=self._order)
        if self.proto < 4:
            self.save_reduce(frozenset, (members,), obj=obj)
            return
        self.write(pickle.MARK)
        for member in members:
            self.save(member)
        if id(obj) in self.memo:  # recursive: drop what was pushed and fetch it from the memo (as pickle does)
            self.write(pickle.POP_MARK + self.get(self.memo[id(obj)][0]))
            return
        self.write(pickle.FROZENSET)
        self.memoize(obj)

    def _order(self, member: Any) -> bytes:
        return canonical_dumps(member, self.proto)

    dispatch[set] = _save_set
    dispatch[frozenset] = _save_frozenset


def canonical_dumps(value: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    buffer = io.BytesIO()
    _CanonicalPickler(buffer, protocol).dump(value)
    return buffer.getvalue()


class CanonicalPickleSerializer(PickleSerializer):
    """The pickle serializer (same ``name``, same ``loads``) whose bytes do not depend on the process: the
    Redis migration plan signs what it writes with it, and validation (another process, another hash seed)
    recomputes the same bytes and signature for an unchanged set."""

    def dumps(self, value: Any) -> bytes:
        return canonical_dumps(value, self.protocol)
