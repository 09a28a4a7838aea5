"""Django's cache contract for the DynamoDB cache backend (seed 003), on moto's in-process DynamoDB."""

from __future__ import annotations

import pytest
from django.core.cache import CacheKeyWarning

from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE, DynamoDBCache
from lizzy.dynamodb import dynamodb_get_item, dynamodb_scan, reset_client
from lizzy.tables import product_tables


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_cache(clock, **params) -> DynamoDBCache:
    cache = DynamoDBCache("LizzyCache", params)
    cache.clock = clock
    return cache


@pytest.fixture
def cache(dynamodb, clock) -> DynamoDBCache:
    return make_cache(clock, TIMEOUT=300)


def test_table_is_registered_with_pk_sk_and_ttl():
    assert CACHE_TABLE in product_tables()
    assert (CACHE_TABLE.partition_key, CACHE_TABLE.sort_key, CACHE_TABLE.ttl_attribute) == (
        ("PK", "S"),
        ("SK", "S"),
        "ttl",
    )


def test_item_shape_is_the_seeds(cache, clock):
    cache.set("greeting", {"text": "hola"}, 60)
    item = dynamodb_get_item(table=cache.table, key={"PK": "CACHE#:1:greeting", "SK": "DATA"})
    assert item["data"] == '{"text":"hola"}'
    assert item["ttl"] == int(clock.now) + 60
    assert item["createdAt"].endswith("Z")


def test_get_set_default_and_json_values(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    cache.set("k", [1, "two", {"three": 3.5}, None, True])
    assert cache.get("k") == [1, "two", {"three": 3.5}, None, True]
    cache.set("tuple", (1, 2))
    assert cache.get("tuple") == [1, 2]  # JSON, never pickle


def test_a_value_json_cannot_hold_is_not_stored(cache, caplog):
    cache.set("obj", object())
    assert cache.get("obj") is None
    assert "not JSON serializable" in caplog.text


def test_expired_entries_are_misses_even_while_dynamodb_still_holds_them(cache, clock):
    cache.set("k", "v", 10)
    clock.now += 11
    assert cache.get("k") is None
    assert not cache.has_key("k")
    assert dynamodb_get_item(table=cache.table, key={"PK": "CACHE#:1:k", "SK": "DATA"}) is not None


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


def test_incr_decr_and_missing_key_raises_value_error(cache):
    cache.set("n", 10)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 6) == 10
    assert cache.get("n") == 10
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("missing")


def test_touch(cache, clock):
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


def test_keys_are_validated(cache):
    with pytest.warns(CacheKeyWarning):
        cache.set("has space", 1)


def test_hits_and_misses_are_counted(cache):
    hits = metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "hit")._value.get()
    misses = metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "miss")._value.get()
    cache.set("k", 1)
    cache.get("k")
    cache.get("nope")
    assert metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "hit")._value.get() == hits + 1
    assert metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, "miss")._value.get() == misses + 1


def test_errors_are_logged_and_treated_as_misses(dynamodb, clock, settings, caplog):
    cache = make_cache(clock)
    cache.set("k", 1)
    # the table vanishes (or DynamoDB is unreachable): the request carries on
    settings.LIZZY_ENV = "gone"
    reset_client()
    assert cache.get("k", "default") == "default"
    cache.set("k", 2)
    assert cache.add("k", 3) is False
    assert cache.delete("k") is False
    assert cache.get_many(["k"]) == {}
    assert cache.set_many({"k": 1}) == ["k"]
    cache.delete_many(["k"])
    cache.clear()
    assert cache.touch("k") is False
    assert cache.has_key("k") is False
    assert "cache get failed" in caplog.text


def test_caches_setting_points_into_the_project(dynamodb, settings):
    from django.core.cache import caches

    settings.CACHES = {
        **settings.CACHES,
        "dynamodb": {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "LOCATION": "LizzyCache"},
    }
    cache = caches.create_connection("dynamodb")
    cache.set("k", "v", 30)
    assert cache.get("k") == "v"
