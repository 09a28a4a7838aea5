"""Values to item attributes and back: serialize, compress, sign; verify, decompress, deserialize.

The signature is an HMAC-SHA256 keyed from ``SECRET_KEY`` (``django.utils.crypto.salted_hmac`` with a
salt of its own, so it never equals another Django signature) over the whole cache key, the format and
the stored bytes: a value cannot be forged, edited, or moved to another key by anyone who can write the
table but does not hold the key. Keys rotate as Django's do: sign with ``SECRET_KEY``, accept
``SECRET_KEY_FALLBACKS`` too. The order on read is fixed: verify (``hmac.compare_digest``), then
decompress, then deserialize; a value that fails any step is a miss with a reason, never an exception.
The signature does not cover ``ttl``: ``touch()`` changes it without rewriting the value.
"""

from __future__ import annotations

import hmac
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from lizzy.cache_backend.items import DATA_ATTR, FORMAT_ATTR, SIG_ATTR
from lizzy.cache_backend.serializers import CacheSerializer
from lizzy.dynamodb.codec import Binary  # boto3 stays behind lizzy/dynamodb (tests/test_import_graph.py)

SIGNING_SALT = "lizzy.cache_backend.codec"
ZLIB_SUFFIX = "+zlib"
COMPRESS_MIN_BYTES = 1024  # below this zlib saves too little to pay for itself (a 4 KB read unit holds it)

# Why a stored value was not served (the ``reason`` label of lizzy_cache_errors_total)
REJECT_UNSIGNED = "unsigned"  # no signature: written by something else (or the JSON-only backend before #17)
REJECT_FORMAT = "wrong_format"  # written by a cache with another serializer
REJECT_SIGNATURE = "bad_signature"  # edited, forged, moved from another key, or signed by a retired key
REJECT_KEY = "wrong_key"  # a hashed partition key shared by two cache keys
REJECT_UNDECODABLE = "undecodable"  # authentic but cannot be read back (a pickled class that was removed)


class ValueRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _message(full_key: str, fmt: str, payload: bytes) -> bytes:
    key = full_key.encode("utf-8")
    return b"%d:%s|%s|" % (len(key), key, fmt.encode("ascii")) + payload


def _secrets() -> Iterator[str | bytes]:
    yield settings.SECRET_KEY
    yield from settings.SECRET_KEY_FALLBACKS


def _signature(message: bytes, secret: str | bytes) -> bytes:
    return salted_hmac(SIGNING_SALT, message, secret=secret, algorithm="sha256").digest()


def encode_value(
    *, full_key: str, value: Any, serializer: CacheSerializer, compress_min_bytes: int = COMPRESS_MIN_BYTES
) -> dict[str, Any]:
    """``data``, ``fmt`` and ``sig`` for ``value``; the serializer's errors propagate."""
    payload = serializer.dumps(value)
    fmt = serializer.name
    if compress_min_bytes and len(payload) >= compress_min_bytes:
        packed = zlib.compress(payload)
        if len(packed) < len(payload):
            payload, fmt = packed, fmt + ZLIB_SUFFIX
    data: bytes | str = payload if serializer.binary or fmt.endswith(ZLIB_SUFFIX) else payload.decode("utf-8")
    signature = _signature(_message(full_key, fmt, payload), settings.SECRET_KEY)
    return {DATA_ATTR: data, FORMAT_ATTR: fmt, SIG_ATTR: signature}


def verify_value(*, full_key: str, item: Mapping[str, Any], serializer: CacheSerializer) -> bytes:
    """The stored bytes when the item is this serializer's and its signature verifies; else ``ValueRejected``."""
    fmt, sig, data = item.get(FORMAT_ATTR), item.get(SIG_ATTR), item.get(DATA_ATTR)
    if not isinstance(sig, bytes) or data is None:
        raise ValueRejected(REJECT_UNSIGNED)
    if fmt not in (serializer.name, serializer.name + ZLIB_SUFFIX):
        raise ValueRejected(REJECT_FORMAT)
    # Types first: a forged Number in ``data`` must never reach bytes() (bytes(2**62) allocates 4 EiB).
    if isinstance(data, str):
        try:
            payload = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueRejected(REJECT_SIGNATURE) from None
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = bytes(data)
    elif isinstance(data, Binary):
        payload = bytes(data.value)
    else:
        raise ValueRejected(REJECT_SIGNATURE)
    message = _message(full_key, fmt, payload)
    if not any(hmac.compare_digest(sig, _signature(message, secret)) for secret in _secrets()):
        raise ValueRejected(REJECT_SIGNATURE)
    return payload


def decode_value(*, full_key: str, item: Mapping[str, Any], serializer: CacheSerializer) -> Any:
    """The value of an item, authenticated before anything is decompressed or deserialized."""
    payload = verify_value(full_key=full_key, item=item, serializer=serializer)
    try:
        if item[FORMAT_ATTR].endswith(ZLIB_SUFFIX):
            payload = zlib.decompress(payload)
        return serializer.loads(payload)
    except Exception as exc:  # noqa: BLE001 - any failure to read back an authentic value is a miss
        raise ValueRejected(REJECT_UNDECODABLE) from exc
