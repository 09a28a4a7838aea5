"""No pickle on any shared store: a pickle read back from a shared Redis is code execution.

Statically: no product module imports pickle and every serializer setting names JSON. At run time:
everything the product writes to Redis (sessions, dirty set, flush summary, events, the Django cache)
parses as JSON or is a plain number/name, and none of it starts with pickle's protocol byte.
"""

from __future__ import annotations

import ast
import json
import re
import uuid

from django.conf import settings
from django.core.cache import cache

from lizzy.redis import reset_redis
from sessions_app.services.session_stores import redis_breaker
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.write_behind import sessions_flush
from tests.lizzy.test_settings import ROOT

PRODUCT_PACKAGES = ("lizzy", "sessions_app", "migration_app")
PICKLE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal"}
PICKLE_PROTOCOL_BYTE = b"\x80"


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module.split(".")[0]


def test_no_product_module_imports_pickle():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in PRODUCT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for name in _imports(path)
        if name in PICKLE_MODULES
    ]
    assert offenders == []


def test_every_serializer_setting_is_json():
    for alias, config in settings.CACHES.items():
        if "redis" in config["BACKEND"].lower():
            assert config["OPTIONS"]["SERIALIZER"] == "django_redis.serializers.json.JSONSerializer", alias
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_RESULT_SERIALIZER == "json"
    assert "Pickle" not in getattr(settings, "SESSION_SERIALIZER", "django.contrib.sessions.serializers.JSONSerializer")


def _values(client, name):
    kind = client.type(name)
    if kind == b"string":
        yield client.get(name)
    elif kind == b"hash":
        yield from client.hvals(name)
    elif kind == b"zset":
        yield from (member for member, _score in client.zrange(name, 0, -1, withscores=True))
    elif kind == b"set":
        yield from client.smembers(name)
    elif kind == b"list":
        yield from client.lrange(name, 0, -1)


PLAIN = re.compile(r"[\w+:.@-]{1,128}")  # a phone, a lock token, a counter: names, not serialized objects


def _json_or_plain(value: bytes) -> bool:
    if value.startswith(PICKLE_PROTOCOL_BYTE):
        return False
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    try:
        json.loads(text)
    except ValueError:
        return bool(PLAIN.fullmatch(text))
    return True


def test_the_check_refuses_a_pickle():
    import pickle  # noqa: S403 - the thing being refused

    assert not _json_or_plain(pickle.dumps({"a": 1}))
    assert not _json_or_plain(pickle.dumps("text", protocol=0))
    assert _json_or_plain(b'{"a": 1}')
    assert _json_or_plain(b"+12065550100")


def test_every_value_the_product_writes_to_redis_is_json(redis_url, dynamodb, settings):
    # given: the product's Redis on the shared server, with a prefix of this test's own
    import redis as redis_py

    prefix = f"lizzy:p{uuid.uuid4().hex[:8]}:"
    settings.LIZZY_SESSION_REDIS_URL = redis_url
    settings.LIZZY_REDIS_PREFIX = prefix
    settings.LIZZY_SESSION_STORE_MODE = "cached_write_behind"
    reset_redis()
    redis_breaker.reset()
    client = redis_py.Redis.from_url(redis_url)
    try:
        # when: sessions are written, changed and flushed; the Django cache is used
        for n in range(5):
            phone = f"+120655501{n:02d}"
            first = session_save(session=session_new(phone=phone, customer_id="CUST123"), expected_version=None)
            first.session_data["problemDescription"] = "won't start ✓"
            session_save(session=first, expected_version=first.version)
        sessions_flush()
        session_save(session=session_new(phone="+12065550199"), expected_version=None)  # left dirty
        cache_key = f"nopickle-{uuid.uuid4().hex}"
        cache.set(cache_key, {"profile": ["a", 1, 2.5]}, 30)

        # then: every value under the prefix (and the cache entry) is JSON or a plain scalar
        names = list(client.scan_iter(match=f"{prefix}*", count=500))
        assert len(names) >= 3, "the test wrote too little to Redis to check anything"
        checked = 0
        for name in names:
            for value in _values(client, name):
                assert _json_or_plain(value), (name, value[:40])
                checked += 1
        if "redis" in settings.CACHES["default"]["BACKEND"].lower():
            raw = [client.get(n) for n in client.scan_iter(match=f"*{cache_key}*")]
            assert raw, "the Django cache entry was not found in Redis"
            assert all(json.loads(value) == {"profile": ["a", 1, 2.5]} for value in raw)
        assert checked >= len(names)
    finally:
        for name in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(name)
        cache.delete(cache_key)
        client.close()
        reset_redis()
