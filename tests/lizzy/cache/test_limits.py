"""DynamoDB's limits under Django's contract: values compressed, refused over 400 KB; keys over 2,048 bytes hashed."""

from __future__ import annotations

import os
import pickle
import warnings
import zlib

import pytest
from django.core.cache import CacheKeyWarning
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lizzy.cache_backend import cache_pk
from lizzy.cache_backend.backend import CacheWriteFailed
from lizzy.dynamodb import dynamodb_scan, item_size
from tests.fixtures.dynamodb_hooks import record_calls
from tests.lizzy.cache.helpers import errors, make_cache, put_raw, raw_item

ITEM_LIMIT = 400 * 1024  # DynamoDB's documented item size limit
PK_LIMIT = 2048  # DynamoDB's documented partition key limit, bytes


@pytest.fixture
def cache(dynamodb):
    return make_cache(TIMEOUT=300, OPTIONS={"ALIAS": "limits-test"})


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        return call(*args, **kwargs)


# --- compression ------------------------------------------------------------------------------------


def test_small_values_are_not_compressed(cache):
    cache.set("k", "x" * 100)
    assert raw_item(cache, "k")["fmt"] == "pickle"


def test_large_compressible_values_are_compressed_and_come_back(cache):
    value = {"rows": [{"model": "HRX217", "price": "499.00"}] * 5000}
    cache.set("k", value)
    item = raw_item(cache, "k")
    assert item["fmt"] == "pickle+zlib"
    assert len(item["data"]) < len(pickle.dumps(value)) / 10
    assert pickle.loads(zlib.decompress(item["data"])) == value  # noqa: S301 - the test's own value
    assert cache.get("k") == value


def test_incompressible_values_are_stored_as_they_are(cache):
    value = os.urandom(50_000)
    cache.set("k", value)
    assert raw_item(cache, "k")["fmt"] == "pickle"
    assert cache.get("k") == value


def test_a_value_over_400_kb_that_compresses_under_it_is_stored(cache):
    value = "lawn mower " * 100_000  # 1.1 MB of text
    assert len(pickle.dumps(value)) > ITEM_LIMIT
    cache.set("k", value)
    assert cache.get("k") == value
    assert item_size(raw_item(cache, "k")) < ITEM_LIMIT


# --- over the item limit: refused, the old value deleted ----------------------------------------------


def test_a_value_still_over_the_limit_is_refused_and_the_old_value_deleted(cache):
    cache.set("session", {"cart": ["old"]})
    before = errors(cache, "set", "too_large")
    cache.set("session", os.urandom(ITEM_LIMIT))  # random bytes do not compress
    assert cache.get("session") is None  # never the stale value
    assert raw_item(cache, "session") is None
    assert errors(cache, "set", "too_large") == before + 1


def test_an_item_over_the_limit_never_reaches_dynamodb_and_one_under_it_does(cache):
    # DynamoDB counts a Binary attribute by its bytes; moto counts its base64 text (4/3 as many), so the
    # exact boundary cannot be checked here: the door's size rule (lizzy.dynamodb.item_size) is DynamoDB's.
    cache.set("edge", "old")
    with record_calls() as calls:
        cache.set("edge", os.urandom(ITEM_LIMIT))
    assert [operation for operation, _table in calls] == ["DeleteItem"]
    assert raw_item(cache, "edge") is None
    with record_calls() as calls:
        cache.set("edge", os.urandom(250_000))
    assert [operation for operation, _table in calls] == ["PutItem"]
    assert len(cache.get("edge")) == 250_000


def test_set_many_returns_the_refused_keys_and_deletes_their_old_values(cache):
    cache.set_many({"small": "old", "big": "old"})
    failed = cache.set_many({"small": "new", "big": os.urandom(ITEM_LIMIT)})
    assert failed == ["big"]
    assert cache.get_many(["small", "big"]) == {"small": "new"}


def test_add_of_a_value_over_the_limit_raises_and_stores_nothing(cache):
    # False would mean "the key exists": a cache session engine would retry add() 10,000 times
    with pytest.raises(CacheWriteFailed, match="too_large"):
        cache.add("k", os.urandom(ITEM_LIMIT))
    assert raw_item(cache, "k") is None


# --- long keys --------------------------------------------------------------------------------------


def test_a_key_over_the_partition_key_limit_is_stored_and_read_back(cache):
    key = "report:" + "x" * 5000
    with pytest.warns(CacheKeyWarning):
        cache.set(key, "value")
    item = raw_item(cache, key)
    assert len(item["PK"].encode()) <= PK_LIMIT
    assert item["key"] == ":1:" + key
    assert item["PK"].startswith("CACHE#:1:report:xxx")  # prefixes (clear, the ops console) still match
    assert quiet(cache.get, key) == "value"
    assert quiet(cache.has_key, key) is True
    assert quiet(cache.get_many, [key, "other"]) == {key: "value"}
    assert quiet(cache.add, key + "n", 1) is True
    assert quiet(cache.incr, key + "n") == 2
    assert quiet(cache.get, key + "n") == 2
    assert quiet(cache.touch, key, 10) is True
    assert quiet(cache.delete, key) is True
    assert quiet(cache.get, key) is None


def test_the_limit_is_in_bytes_not_characters(cache):
    near = "é" * 1030  # 1,030 characters, 2,060 bytes
    assert len(("CACHE#:1:" + near).encode()) > PK_LIMIT
    quiet(cache.set, near, 1)
    assert len(raw_item(cache, near)["PK"].encode()) <= PK_LIMIT
    assert quiet(cache.get, near) == 1
    fits = "a" * (PK_LIMIT - len("CACHE#:1:"))
    quiet(cache.set, fits, 2)
    assert raw_item(cache, fits)["PK"] == "CACHE#:1:" + fits  # exactly at the limit: not hashed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.text(min_size=2100, max_size=2300), tails=st.lists(st.text(max_size=3), min_size=2, max_size=4))
def test_long_keys_that_share_a_head_never_answer_for_each_other(cache, head, tails):
    keys = list(dict.fromkeys(head + tail for tail in tails))
    for index, key in enumerate(keys):
        quiet(cache.set, key, index)
    assert {key: quiet(cache.get, key) for key in keys} == {key: index for index, key in enumerate(keys)}
    assert all(len(cache_pk(":1:" + key).encode()) <= PK_LIMIT for key in keys)


def test_a_plain_key_that_spells_a_hashed_partition_key_only_causes_misses(cache):
    long_key = "a" * 3000
    quiet(cache.set, long_key, "long")
    forged = raw_item(cache, long_key)["PK"].removeprefix("CACHE#:1:")  # a short key with the same PK
    before = errors(cache, "get", "wrong_key")
    quiet(cache.set, forged, "forged")
    assert quiet(cache.get, long_key) is None  # never the forged key's value
    assert quiet(cache.get, forged) == "forged"
    quiet(cache.set, long_key, "long again")
    assert quiet(cache.get, forged) is None  # nor the other way round
    assert errors(cache, "get", "wrong_key") == before + 2


def test_clear_removes_long_keys_too(cache):
    quiet(cache.set, "b" * 3000, 1)
    put_raw(cache, {"PK": "LIZZY#write-behind-fence", "SK": "DATA", "until": 1})
    cache.clear()
    assert [item["PK"] for item in dynamodb_scan(table=cache.table).items] == ["LIZZY#write-behind-fence"]
