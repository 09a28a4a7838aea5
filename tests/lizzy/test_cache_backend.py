"""Django's cache contract for the DynamoDB cache backend (seed 003), on moto's in-process DynamoDB.

Django's own BaseCacheTests run over HTTP in tests/lizzy/cache/test_django_suite.py; these are the
fast checks of the item shape and of what that suite does not reach (a moved clock, metrics, errors).
"""

from __future__ import annotations

import datetime as dt
import pickle
import warnings
from decimal import Decimal

import pytest
from django.core.cache import CacheKeyWarning
from django.http import HttpResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE
from lizzy.cache_backend.backend import CacheWriteFailed
from lizzy.dynamodb import dynamodb_scan, reset_client
from lizzy.tables import product_tables
from tests.lizzy.cache.helpers import Clock, errors, make_cache, raw_item


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(dynamodb, clock):
    return make_cache(clock, TIMEOUT=300)


def test_table_is_registered_with_pk_sk_and_ttl():
    assert CACHE_TABLE in product_tables()
    assert (CACHE_TABLE.partition_key, CACHE_TABLE.sort_key, CACHE_TABLE.ttl_attribute) == (
        ("PK", "S"),
        ("SK", "S"),
        "ttl",
    )


def test_item_shape_is_the_seeds_with_a_signed_pickle(cache, clock):
    cache.set("greeting", {"text": "hola"}, 60)
    item = raw_item(cache, "greeting")
    assert (item["PK"], item["SK"]) == ("CACHE#:1:greeting", "DATA")
    assert item["fmt"] == "pickle"
    assert pickle.loads(item["data"]) == {"text": "hola"}  # noqa: S301 - the test's own value
    assert isinstance(item["sig"], bytes)
    assert len(item["sig"]) == 32
    assert item["ttl"] == int(clock.now) + 60
    assert item["createdAt"].endswith("Z")
    assert "key" not in item  # only hashed (long) keys keep the whole key


def test_values_come_back_as_they_were_stored(cache):
    values = {
        "tuple": (1, 2),
        "int-keys": {1: "a"},
        "set": {"a", "b"},
        "bytes": b"\x00\xff",
        "datetime": dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
        "decimal": Decimal("12345678901234567890123456789012345678.5"),
        "none": None,
        "big": 10**40,
        "float": 0.1,
    }
    for key, value in values.items():
        cache.set(key, value)
    assert {key: cache.get(key, "miss") for key in values} == values
    assert cache.get_many(values) == values


def test_an_http_response_is_cached_so_cache_page_works(cache):
    response = HttpResponse("hello", headers={"X-Dealer": "7"})
    response.set_cookie("seen", "1")
    cache.set("page", response)
    cached = cache.get("page")
    assert (cached.content, cached["X-Dealer"], cached.cookies["seen"].value) == (b"hello", "7", "1")


picklable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.datetimes(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.integers() | st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=picklable, key=st.text(min_size=1, max_size=40))
def test_any_picklable_value_round_trips_under_any_key(cache, value, key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)  # memcached's rules; Django only warns, so do we
        cache.set(key, value)
        assert cache.get(key, "miss") == value


def test_expired_entries_are_misses_even_while_dynamodb_still_holds_them(cache, clock):
    cache.set("k", "v", 10)
    clock.now += 11
    assert cache.get("k") is None
    assert not cache.has_key("k")
    assert raw_item(cache, "k") is not None


def test_timeout_none_is_forever_and_zero_is_do_not_store(cache, clock):
    cache.set("forever", 1, None)
    cache.set("zero", 1, 0)
    clock.now += 10**8
    assert cache.get("forever") == 1
    assert cache.get("zero") is None
    cache.set("was-there", 1)
    cache.set("was-there", 2, 0)  # Django: a zero timeout expires the key now
    assert cache.get("was-there") is None


def test_default_timeout_comes_from_the_cache_settings(dynamodb, clock):
    cache = make_cache(clock, TIMEOUT=5)
    cache.set("k", "v")
    clock.now += 6
    assert cache.get("k") is None


def test_add_only_if_absent_or_expired(cache, clock):
    assert cache.add("k", "first", 10) is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"
    clock.now += 11
    assert cache.add("k", "third") is True
    assert cache.get("k") == "third"


def test_delete_and_delete_many(cache):
    cache.set("a", 1)
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    cache.set_many({"x": 1, "y": 2, "z": 3})
    cache.delete_many(["x", "y", "nope"])
    assert cache.get_many(["x", "y", "z"]) == {"z": 3}


def test_get_many_and_set_many(cache, clock):
    assert cache.set_many({"a": 1, "b": [2]}, 10) == []
    cache.set("c", 3, 100)
    clock.now += 11
    assert cache.get_many(["a", "b", "c", "d"]) == {"c": 3}
    assert cache.get_many([]) == {}


def test_incr_decr_keep_the_ttl_and_missing_key_raises_value_error(cache, clock):
    cache.set("n", 10, 60)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 6) == 10
    assert cache.get("n") == 10
    assert raw_item(cache, "n")["ttl"] == int(clock.now) + 60
    cache.set("f", 1.5)
    assert cache.incr("f") == 2.5  # as Django's backends: value + delta
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("missing")
    cache.set("text", "abc")
    with pytest.raises(TypeError):
        cache.incr("text")
    assert cache.get("text") == "abc"


def test_touch_keeps_the_value_readable(cache, clock):
    cache.set("k", "v", 10)
    assert cache.touch("k", 100) is True
    clock.now += 50
    assert cache.get("k") == "v"
    assert cache.touch("k", None) is True
    clock.now += 10**6
    assert cache.get("k") == "v"
    assert cache.touch("missing", 10) is False


def test_versions(cache):
    cache.set("k", "v1", version=1)
    cache.set("k", "v2", version=2)
    assert cache.get("k", version=1) == "v1"
    assert cache.get("k", version=2) == "v2"
    assert cache.incr_version("k", version=2) == 3
    assert cache.get("k", version=3) == "v2"
    assert cache.get("k", version=2) is None


def test_key_prefix_separates_caches_and_clear_removes_only_its_own(dynamodb, clock):
    first = make_cache(clock, KEY_PREFIX="first")
    second = make_cache(clock, KEY_PREFIX="second")
    first.set("k", "one")
    second.set("k", "two")
    assert (first.get("k"), second.get("k")) == ("one", "two")
    from lizzy.dynamodb import dynamodb_put_item

    dynamodb_put_item(table=first.table, item={"PK": "OTHER#thing", "SK": "DATA", "data": "keep"})
    first.clear()
    assert first.get("k") is None
    assert second.get("k") == "two"
    assert {item["PK"] for item in dynamodb_scan(table=first.table).items} == {"CACHE#second:1:k", "OTHER#thing"}


def test_keys_are_validated_with_djangos_warnings(cache):
    with pytest.warns(CacheKeyWarning, match="memcached"):
        cache.set("has space", 1)
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.set("k" * 251, 1)
    with pytest.warns(CacheKeyWarning):
        assert cache.get("has space") == 1


def test_hits_and_misses_are_counted(cache):
    hits = metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "hit")._value.get()
    misses = metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "miss")._value.get()
    cache.set("k", 1)
    cache.get("k")
    cache.get("nope")
    assert metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "hit")._value.get() == hits + 1
    assert metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "miss")._value.get() == misses + 1


def test_errors_are_logged_counted_and_treated_as_misses(dynamodb, clock, settings, caplog):
    cache = make_cache(clock)
    cache.set("k", 1)
    # the table vanishes (or DynamoDB is unreachable): the request carries on
    settings.LIZZY_ENV = "gone"
    reset_client()
    before = errors(cache, "get", "table_not_found")
    assert cache.get("k", "default") == "default"
    cache.set("k", 2)
    with pytest.raises(CacheWriteFailed, match="table_not_found"):
        cache.add("k", 3)  # never False, which reads as "the key exists"
    assert cache.delete("k") is False
    assert cache.get_many(["k"]) == {}
    assert cache.set_many({"k": 1}) == ["k"]
    cache.delete_many(["k"])
    cache.clear()
    assert cache.touch("k") is False
    assert cache.has_key("k") is False
    with pytest.raises(ValueError, match="could not be read"):
        cache.incr("k")
    assert "cache get failed" in caplog.text
    assert errors(cache, "get", "table_not_found") == before + 1
    assert errors(cache, "set", "table_not_found") >= 1


def test_caches_setting_points_into_the_project(dynamodb, settings):
    from django.core.cache import caches

    settings.CACHES = {
        **settings.CACHES,
        "dynamodb": {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "LOCATION": "LizzyCache"},
    }
    cache = caches.create_connection("dynamodb")
    cache.set("k", ("v", 1), 30)
    assert cache.get("k") == ("v", 1)
