"""Real Redis for the store tests: the shared server (REDIS_URL, own key prefix per test), or a
redis-server of the test's own (``own_redis``, in tests/fixtures/redis_server.py) it may kill and restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis as redis_py

from lizzy.redis import reset_redis
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.factory import stores_reset
from sessions_app.services.store_modes import store_mode_forget_cache


@pytest.fixture
def session_redis(redis_url: str, settings) -> Iterator[redis_py.Redis]:
    """The shared Redis with a key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"lizzy:t{uuid.uuid4().hex[:10]}:"
    settings.LIZZY_SESSION_REDIS_URL = redis_url
    settings.LIZZY_REDIS_PREFIX = prefix
    reset_redis()
    redis_breaker.reset()
    stores_reset()
    store_mode_forget_cache()
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    yield client
    for name in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(name)
    client.close()
    reset_redis()
    redis_breaker.reset()


@pytest.fixture
def use_mode(settings):
    """Pin the session store mode for this test (the database-backed path has its own tests)."""

    def use(mode: str) -> None:
        settings.LIZZY_SESSION_STORE_MODE = mode

    return use
