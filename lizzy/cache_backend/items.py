"""The cache table's item layout (seed 003): ``PK = CACHE#{key}``, ``SK = DATA``, long keys hashed.

DynamoDB refuses a partition key over 2,048 bytes, and Django's other backends store long keys (with a
warning), so a key whose ``CACHE#{key}`` would be longer keeps its first bytes (``clear()`` and the ops
console's prefix filters still match) followed by ``#sha256:`` and the digest of the whole key; the whole
key is kept in the ``key`` attribute and compared on every read, so two keys that meet in one partition
key only ever miss, never answer for each other.
"""

from __future__ import annotations

import hashlib

from lizzy.tables import TableSpec, register_table

CACHE_TABLE = register_table(
    TableSpec(
        base_name="LizzyCache",
        partition_key=("PK", "S"),
        sort_key=("SK", "S"),
        ttl_attribute="ttl",
        description=(
            "Django cache entries (seed 003): PK=CACHE#{key} (long keys hashed), SK=DATA, data, fmt, sig, "
            "key (long keys only), ttl, createdAt, ns."
        ),
    )
)
PK_PREFIX = "CACHE#"
SK_DATA = "DATA"
PK_MAX_BYTES = 2048  # DynamoDB's partition key limit (bytes of the UTF-8 value)
HASH_MARK = "#sha256:"
_HASHED_HEAD_BYTES = PK_MAX_BYTES - len(PK_PREFIX) - len(HASH_MARK) - 64  # 64 hex digits of SHA-256

# Attributes besides the key
DATA_ATTR = "data"  # the serialized value: String (JSON, uncompressed) or Binary
FORMAT_ATTR = "fmt"  # serializer name, "+zlib" when compressed
SIG_ATTR = "sig"  # HMAC-SHA256 of key, format and data (lizzy.cache_backend.codec)
KEY_ATTR = "key"  # the whole cache key, on hashed items only
TTL_ATTR = "ttl"
CREATED_ATTR = "createdAt"
NS_ATTR = "ns"  # the writing cache's key function and KEY_PREFIX: what clear() deletes


def cache_pk(full_key: str) -> str:
    """The partition key of a cache key as Django built it (``KEY_PREFIX:version:key``)."""
    plain = PK_PREFIX + full_key
    encoded = plain.encode("utf-8")
    if len(encoded) <= PK_MAX_BYTES:
        return plain
    head = full_key.encode("utf-8")[:_HASHED_HEAD_BYTES].decode("utf-8", errors="ignore")
    return PK_PREFIX + head + HASH_MARK + hashlib.sha256(full_key.encode("utf-8")).hexdigest()


def is_hashed(full_key: str) -> bool:
    return len((PK_PREFIX + full_key).encode("utf-8")) > PK_MAX_BYTES


def item_key(full_key: str) -> dict[str, str]:
    return {"PK": cache_pk(full_key), "SK": SK_DATA}


def full_key_of(item: dict) -> str:
    """The cache key an item answers for: the ``key`` attribute of a hashed item, else its PK."""
    return item.get(KEY_ATTR) or item["PK"].removeprefix(PK_PREFIX)
