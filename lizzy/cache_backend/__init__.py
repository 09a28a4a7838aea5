"""The DynamoDB Django cache backend (seed 003): ``lizzy.cache_backend.DynamoDBCache``.

``backend.py`` is the cache, ``items.py`` the table and item layout, ``codec.py`` signing and
compression, ``serializers/`` pickle (the default) and JSON. docs/CACHE.md says how to configure it.
"""

from lizzy.cache_backend.backend import CacheWriteFailed, DynamoDBCache, cache_item_attributes, cache_namespace
from lizzy.cache_backend.items import CACHE_TABLE, PK_PREFIX, SK_DATA, cache_pk, is_hashed

__all__ = [
    "CACHE_TABLE",
    "PK_PREFIX",
    "SK_DATA",
    "CacheWriteFailed",
    "DynamoDBCache",
    "cache_item_attributes",
    "cache_namespace",
    "cache_pk",
    "is_hashed",
]
