"""The Redis door for reading someone else's Redis: the migration engine's ``redis://`` source.

``lizzy.redis`` is the product's own Redis (sessions, pub/sub, presence); this module opens a Redis named by a
migration plan's URL, with the source's timeouts, so redis-py stays behind ``lizzy/redis*``
(tests/test_import_graph.py).
"""

from __future__ import annotations

import redis

RedisError = redis.RedisError


def redis_source_client(url: str, *, timeout: float) -> redis.Redis:
    """A client for ``url`` that gives up connecting and reading after ``timeout`` seconds."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
