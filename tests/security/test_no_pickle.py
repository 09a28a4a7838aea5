"""Nothing unpickled that was not authenticated: a pickle read back from a shared store is code execution.

Redis holds no pickle at all: every serializer setting names JSON, and at run time everything the
product writes to Redis (sessions, dirty set, flush summary, events, the Django cache) parses as JSON
or is a plain number/name, none of it starting with pickle's protocol byte.

The DynamoDB cache backend pickles, as Django's contract says, and only behind an HMAC (issue 17):
statically, one product module imports pickle (the cache's pickle serializer) and the one place that
calls a serializer's ``loads`` verifies the signature first; at run time a pickle planted in the cache
table without a valid signature is a miss and is never unpickled (tests/lizzy/cache/test_signing.py
has every way of planting one).
"""

from __future__ import annotations

import ast
import json
import re
import uuid

from django.conf import settings
from django.core.cache import cache

from lizzy.redis import reset_redis
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.write_behind import sessions_flush
from tests.lizzy.test_settings import ROOT

PRODUCT_PACKAGES = ("lizzy", "sessions_app", "migration_app")
PICKLE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal"}
PICKLE_PROTOCOL_BYTE = b"\x80"
PICKLE_IMPORTERS = {"lizzy/cache_backend/serializers/pickle.py"}  # authenticated before every load
LOADS_CALLERS = {("lizzy/cache_backend/codec.py", "decode_value")}
# The Redis migration source reads a django-redis cache as django-redis itself does, with the serializer the
# operator names in the source URL (JSON by default; pickle only when they say so): no signature exists there.
SOURCE_LOADS_CALLERS = {("migration_app/sources/redis.py", "_django_redis_value")}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module.split(".")[0]


def _product_modules():
    for package in PRODUCT_PACKAGES:
        yield from (ROOT / package).rglob("*.py")


def test_only_the_signed_cache_serializer_imports_pickle():
    importers = {
        str(path.relative_to(ROOT)) for path in _product_modules() if any(n in PICKLE_MODULES for n in _imports(path))
    }
    assert importers == PICKLE_IMPORTERS


def _loads_calls(path):
    """(function name, line) of every ``<something>.loads(...)`` on a serializer, pickle or module."""
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "loads"
                    and isinstance(node.func.value, ast.Attribute | ast.Name)
                    and (getattr(node.func.value, "attr", None) or node.func.value.id) in ("serializer", "pickle")
                ):
                    yield function, node


def test_serializers_are_only_loaded_after_the_signature_is_verified():
    callers = set()
    for path in _product_modules():
        for function, call in _loads_calls(path):
            relative = str(path.relative_to(ROOT))
            if relative in PICKLE_IMPORTERS and function.name == "loads":
                continue  # PickleSerializer.loads itself
            callers.add((relative, function.name))
            if (relative, function.name) in SOURCE_LOADS_CALLERS:
                continue
            verified_at = [
                node.lineno
                for node in ast.walk(function)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "verify_value"
            ]
            assert verified_at, f"{relative}:{call.lineno} loads without verify_value"
            assert min(verified_at) < call.lineno, f"{relative}:{call.lineno} loads before verify_value"
    assert callers == LOADS_CALLERS | SOURCE_LOADS_CALLERS


def test_every_serializer_setting_is_json_or_the_signed_cache():
    for alias, config in settings.CACHES.items():
        if "redis" in config["BACKEND"].lower():
            assert config["OPTIONS"]["SERIALIZER"] == "django_redis.serializers.json.JSONSerializer", alias
        elif config["BACKEND"] == "lizzy.cache_backend.DynamoDBCache":
            assert config.get("OPTIONS", {}).get("SERIALIZER", "pickle") in ("pickle", "json"), alias
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


def test_a_pickle_planted_in_the_dynamodb_default_cache_is_never_unpickled(dynamodb, settings, monkeypatch):
    # given: the DynamoDB cache as Django's default cache, and a pickle planted without a valid signature
    import pickle  # noqa: S403 - the thing being planted

    from django.core.cache import caches

    from lizzy.cache_backend.serializers import pickle as pickle_serializer
    from lizzy.dynamodb import dynamodb_put_item

    settings.CACHES = {"default": {"BACKEND": "lizzy.cache_backend.DynamoDBCache"}}
    default = caches["default"]
    unpickled = []
    monkeypatch.setattr(pickle_serializer.pickle, "loads", lambda *a, **k: unpickled.append(a))
    planted = pickle.dumps({"planted": True})
    dynamodb_put_item(
        table=default.table,
        item={"PK": "CACHE#:1:planted", "SK": "DATA", "fmt": "pickle", "data": planted, "sig": b"\0" * 32},
    )
    # when / then: a miss, and pickle.loads never ran
    assert default.get("planted", "miss") == "miss"
    assert unpickled == []
