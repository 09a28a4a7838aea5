"""Issue 17 review: the DynamoDB cache backend (moto in-process unless said otherwise)."""

from __future__ import annotations

import hashlib
import warnings
from decimal import Decimal

import pytest
from django.core.cache import CacheKeyWarning
from django.core.cache.backends.locmem import LocMemCache

from lizzy.cache_backend import cache_pk
from lizzy.cache_entries import cache_entries_page
from tests.lizzy.cache.helpers import errors, make_cache, put_raw, raw_item


@pytest.fixture
def cache(dynamodb):
    return make_cache(TIMEOUT=300, OPTIONS={"ALIAS": "review17"})


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        return call(*args, **kwargs)


LONE_SURROGATE_KEY = "name-\udcff"  # a str Python accepts (os.fsdecode of a non-UTF-8 file name gives these)


def test_a_key_with_a_lone_surrogate_is_a_miss_not_an_exception(cache):
    # Django's other backends take any str key (locmem stores it); seed 003: errors never break a request
    LocMemCache("review17", {}).get(LONE_SURROGATE_KEY)
    assert quiet(cache.get, LONE_SURROGATE_KEY, "default") == "default"


def test_set_many_reports_every_key_it_did_not_store(cache):
    # given a long key (hashed into the partition key) and a plain key that spells that very partition key
    long_key = "x" * 2100
    full_long = cache.make_key(long_key)
    hashed_pk = cache_pk(full_long)
    plain_key = hashed_pk.removeprefix("CACHE#").removeprefix(cache.make_key(""))
    assert cache_pk(cache.make_key(plain_key)) == hashed_pk
    assert hashed_pk.endswith(hashlib.sha256(full_long.encode()).hexdigest())
    # when both are set in one call
    failed = quiet(cache.set_many, {long_key: "long", plain_key: "plain"})
    # then a key set_many did not store is in its answer (Django: "a list of keys that failed insertion")
    stored = {key for key in (long_key, plain_key) if quiet(cache.get, key) is not None}
    assert set(failed) == {long_key, plain_key} - stored


def test_get_many_answers_for_every_key_it_was_given(cache):
    # Django's BaseCache.get_many (which locmem, the database cache and file cache use) answers each key given:
    # keys 1 and "1" are both the full key ":1:1"
    locmem = LocMemCache("review17-get-many", {})
    locmem.set(1, "v")
    assert locmem.get_many([1, "1"]) == {1: "v", "1": "v"}
    cache.set(1, "v")
    assert cache.get_many([1, "1"]) == {1: "v", "1": "v"}


def test_a_hugely_negative_timeout_is_do_not_store_like_any_negative_one(cache):
    # docs/CACHE.md, Timeouts: "0 or less for 'do not store'"; 10**400 is clamped, -10**400 raises ValueError
    cache.set("k", "old")
    cache.set("k", "new", timeout=-(10**400))
    assert cache.get("k") is None


@pytest.mark.parametrize(
    "forged_data",
    [
        Decimal("1.5"),  # a Number attribute: bytes(Decimal) raises TypeError
        2**62,  # a Number attribute: bytes(2**62) tries to allocate 4 EiB of zeros before any HMAC (MemoryError)
    ],
    ids=["decimal", "huge-int"],
)
def test_a_forged_item_whose_data_is_a_number_is_a_miss_never_an_exception(cache, forged_data):
    # given someone who can write the table (the threat the signature is for) puts a Number in `data`
    full_key = cache.make_key("k")
    put_raw(cache, {"PK": cache_pk(full_key), "SK": "DATA", "data": forged_data, "fmt": "pickle", "sig": b"\0" * 32})
    before = errors(cache, "get", "bad_signature") + errors(cache, "get", "unsigned")
    # then get is a miss counted as a rejected value (codec.py: "a value that fails any step is a miss with a
    # reason, never an exception"); at review time verify_value calls bytes(data) first and the error escapes
    assert cache.get("k", "default") == "default"
    assert errors(cache, "get", "bad_signature") + errors(cache, "get", "unsigned") == before + 1


def test_an_item_whose_ttl_is_not_a_number_is_a_miss_never_an_exception(cache):
    # given a genuine value whose (unsigned, docs/CACHE.md) ttl attribute someone rewrote as a String
    cache.set("k", "v")
    item = raw_item(cache, "k")
    put_raw(cache, {**item, "ttl": "forever"})
    # then get answers (a miss or the value), has_key too; at review time `ttl > clock()` raises TypeError
    assert cache.get("k", "default") in ("v", "default")
    assert cache.has_key("k") in (True, False)


def test_the_cached_entries_page_lists_an_item_whose_ttl_is_not_a_number(cache):
    # given the same rewritten ttl as above next to a genuine entry
    cache.set("ok", "v")
    cache.set("k", "v")
    put_raw(cache, {**raw_item(cache, "k"), "ttl": "forever"})
    # then the ops console's Cached entries page still lists both; at review time int("forever") raises
    entries, _cursor = cache_entries_page()
    assert {entry.key for entry in entries} == {":1:ok", ":1:k"}
