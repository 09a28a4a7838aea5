"""The edges of Django's cache contract that a review found broken: each test failed before its fix.

clear() scoped to this cache, add() never answering "exists" for an error, nothing stuck or stale,
touch/delete answering only for this key's live items, timeouts rounded up and clamped, delete in one
call, failed conditions not counted as errors; and the stronger checks (incr under real concurrency,
hit/miss counts, get_many never answering with another key's value).
"""

from __future__ import annotations

import math
import pickle
import threading

import pytest
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import CacheKeyWarning
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lizzy import metrics
from lizzy.cache_backend import cache_pk
from lizzy.cache_backend.backend import MAX_TIMEOUT_SECONDS, CacheWriteFailed
from lizzy.cache_backend.codec import encode_value
from lizzy.cache_backend.serializers.pickle import PickleSerializer
from tests.fixtures.dynamodb_hooks import client_error, fault_injection, record_calls
from tests.lizzy.cache.helpers import Clock, errors, make_cache, put_raw, raw_item


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(dynamodb, clock):
    return make_cache(clock, TIMEOUT=300, OPTIONS={"ALIAS": "edges-test"})


def flat_key(key, key_prefix, version):
    """A KEY_FUNCTION that ignores the prefix and the version: its keys look like another cache's."""
    return f"a:{key}"


def failing(*operations, code="InternalServerError"):
    def hook(operation, params, call):
        if operation in operations:
            raise client_error(code, "injected", operation)
        return call(params)

    return hook


class Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("not this one")


def sign_raw(cache, key, payload: bytes, **extra):
    """An authentic item of ``key`` whose pickle cannot be loaded any more (a class renamed since)."""

    class Raw(PickleSerializer):
        def dumps(self, value):
            return value

    full_key = cache.make_key(key)
    return {
        "PK": cache_pk(full_key),
        "SK": "DATA",
        **encode_value(full_key=full_key, value=payload, serializer=Raw({}), compress_min_bytes=0),
        **extra,
    }


GONE_CLASS_PICKLE = b"cno_such_module_x\nThing\n."  # GLOBAL of a module that is gone, STOP


# --- D1: clear() deletes this cache's keys only -----------------------------------------------------


def test_clear_leaves_caches_whose_prefix_starts_like_this_ones(dynamodb, clock):
    a, ab, a1 = (make_cache(clock, KEY_PREFIX=prefix) for prefix in ("a", "ab", "a:1"))
    a.set("k", "a's")
    ab.set("k", "ab's")
    a1.set("k", "a:1's")  # its full key a:1:1:k also starts with a's "a:1:"
    a.clear()
    assert a.get("k") is None
    assert ab.get("k") == "ab's"
    assert a1.get("k") == "a:1's"


def test_clear_with_a_custom_key_function_deletes_only_that_caches_keys(dynamodb, clock):
    plain = make_cache(clock, KEY_PREFIX="a")
    custom = make_cache(clock, KEY_FUNCTION=flat_key)  # keys "a:<key>", no prefix at all
    plain.set("k", "plain's")
    custom.set("k", "custom's")
    plain.clear()
    assert custom.get("k") == "custom's"
    plain.set("k", "plain's")
    custom.clear()  # its KEY_PREFIX is "": a prefix match would have deleted every cache's entries
    assert custom.get("k") is None
    assert plain.get("k") == "plain's"


def test_clear_removes_this_caches_items_written_before_the_namespace_attribute(dynamodb, clock):
    a, ab = make_cache(clock, KEY_PREFIX="a"), make_cache(clock, KEY_PREFIX="ab")
    for cache, key in ((a, "old"), (ab, "old")):
        cache.set(key, "v")
        item = raw_item(cache, key)
        del item["ns"]
        put_raw(cache, item)
    a.clear()
    assert raw_item(a, "old") is None
    assert ab.get("old") == "v"


# --- D2: add() errors are never "the key exists" ------------------------------------------------------


def test_a_cache_session_store_fails_fast_when_add_cannot_write(cache, settings):
    settings.CACHES = {**settings.CACHES, "sessions": {"BACKEND": "lizzy.cache_backend.DynamoDBCache"}}
    settings.SESSION_CACHE_ALIAS = "sessions"
    calls = []

    def hook(op, params, call):
        calls.append(op)
        if op == "PutItem":
            raise client_error("InternalServerError", "injected", op)
        return call(params)

    with fault_injection(hook), pytest.raises(CacheWriteFailed):
        SessionStore().create()  # Django retries a False add() 10,000 times
    assert calls.count("PutItem") == 1


def test_add_answers_false_only_when_the_key_holds_a_value(cache):
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is False
    throttled = failing("PutItem", code="ProvisionedThroughputExceededException")
    with fault_injection(throttled), pytest.raises(CacheWriteFailed, match="dynamodb_throttled"):
        cache.add("other", 1)
    assert cache.get("k") == 1


# --- D3: nothing a get cannot serve is stuck ---------------------------------------------------------


def test_an_authentic_value_that_cannot_be_unpickled_is_replaced_by_add_and_set(cache):
    put_raw(cache, sign_raw(cache, "k", GONE_CLASS_PICKLE))
    assert cache.get("k", "miss") == "miss"
    assert errors(cache, "get", "undecodable") >= 1
    assert cache.has_key("k") is False
    assert cache.add("k", "fresh") is True  # before: "exists" forever, while every get missed
    assert cache.get("k") == "fresh"
    put_raw(cache, sign_raw(cache, "k", GONE_CLASS_PICKLE))
    cache.set("k", "set")
    assert cache.get("k") == "set"


def test_unsigned_and_foreign_items_are_replaced_by_add(cache):
    put_raw(cache, {"PK": cache_pk(cache.make_key("u")), "SK": "DATA", "data": '"legacy json"'})
    assert cache.add("u", "new") is True
    assert cache.get("u") == "new"


# --- D4: a set_many that raises leaves no old value readable ----------------------------------------


def test_set_many_with_one_unpicklable_value_leaves_no_old_value_of_the_call(cache):
    cache.set_many({"a": "old a", "b": "old b", "c": "old c", "other": "kept"})
    with pytest.raises(pickle.PicklingError):
        cache.set_many({"a": "new a", "b": Unpicklable(), "c": "new c"})
    assert cache.get_many(["a", "b", "c", "other"]) == {"other": "kept"}


# --- D5: touch and delete answer for this key's live items only -------------------------------------


def long_key(tag: str) -> str:
    return "report:" + "x" * 2100 + tag


@pytest.mark.filterwarnings("ignore::django.core.cache.CacheKeyWarning")
def test_touch_and_delete_of_a_hashed_key_whose_item_is_another_keys(cache):
    key = long_key("mine")
    cache.set(key, "v")
    item = raw_item(cache, key)
    item["key"] = cache.make_key(long_key("theirs"))  # the partition key answers for another key
    put_raw(cache, item)
    assert cache.touch(key, 1000) is False
    assert raw_item(cache, key)["ttl"] == item["ttl"]
    assert cache.delete(key) is False


def test_touch_and_delete_of_an_expired_item_answer_false(cache, clock):
    cache.set("k", "v", timeout=10)
    clock.now += 11  # DynamoDB has not removed it yet
    assert cache.touch("k", 100) is False
    assert cache.get("k") is None
    cache.set("k", "v", timeout=10)
    clock.now += 11
    assert cache.delete("k") is False
    assert raw_item(cache, "k") is None  # removed all the same


def test_touch_of_an_unsigned_item_answers_false(cache):
    put_raw(cache, {"PK": cache_pk(cache.make_key("u")), "SK": "DATA", "data": "x"})
    assert cache.touch("u") is False


# --- D7/D8: timeouts rounded up, clamped, never an accident ------------------------------------------


@pytest.mark.parametrize("timeout", [5e-324, 1e-9, 0.2, 0.5, 0.999, 1.0001])
def test_fractional_timeouts_round_up(cache, clock, timeout):
    cache.set("k", "v", timeout=timeout)
    assert raw_item(cache, "k")["ttl"] == math.ceil(clock.now + timeout) or clock.now + timeout == clock.now
    assert raw_item(cache, "k")["ttl"] > clock.now  # a timeout too small to move the clock still stores
    assert cache.get("k") == "v"
    clock.now += math.ceil(timeout) + 1
    assert cache.get("k") is None


def test_a_fractional_default_timeout_is_not_truncated_to_do_not_store(dynamodb, clock):
    cache = make_cache(clock, TIMEOUT=0.5)  # Django's BaseCache would make it int(0.5) == 0
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert raw_item(cache, "k")["ttl"] == math.ceil(clock.now + 0.5)


@pytest.mark.parametrize("timeout", [float("inf"), 10**30, 10**400, 1e300, MAX_TIMEOUT_SECONDS + 1])
def test_huge_and_infinite_timeouts_are_clamped_to_a_century(cache, clock, timeout):
    cache.set("k", "v", timeout=timeout)
    assert raw_item(cache, "k")["ttl"] == math.ceil(clock.now + MAX_TIMEOUT_SECONDS)
    assert cache.add("k2", "v", timeout=timeout) is True
    assert cache.touch("k", timeout) is True
    assert cache.set_many({"k3": "v"}, timeout=timeout) == []
    assert cache.get_many(["k", "k2", "k3"]) == {"k": "v", "k2": "v", "k3": "v"}


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    timeout=st.one_of(
        st.none(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False),
        st.floats(min_value=-2, max_value=2),
    )
)
def test_any_timeout_stores_until_its_rounded_up_end_or_not_at_all(cache, clock, timeout):
    cache.set("k", "v", timeout=timeout)
    item = raw_item(cache, "k")
    if timeout is not None and timeout <= 0:
        assert item is None  # Django: 0 or less is "do not store"
        return
    assert cache.get("k") == "v"
    if timeout is None:
        assert "ttl" not in item
        return
    assert item["ttl"] == max(math.ceil(clock.now + min(timeout, MAX_TIMEOUT_SECONDS)), math.floor(clock.now) + 1)
    assert item["ttl"] > clock.now  # never an accidental immediate expiry


def test_an_infinite_default_timeout_is_accepted(dynamodb, clock):
    cache = make_cache(clock, TIMEOUT=float("inf"))
    cache.set("k", "v")
    assert raw_item(cache, "k")["ttl"] == math.ceil(clock.now + MAX_TIMEOUT_SECONDS)


def test_a_nan_timeout_is_refused(cache):
    with pytest.raises(ValueError, match="not a number"):
        cache.set("k", "v", timeout=float("nan"))


# --- D9: delete is one call -------------------------------------------------------------------------


def test_delete_is_one_request_present_absent_or_expired(cache, clock):
    cache.set("present", 1)
    cache.set("expired", 1, timeout=5)
    clock.now += 6
    for key, answer in (("present", True), ("absent", False), ("expired", False)):
        with record_calls() as calls:
            assert cache.delete(key) is answer
        assert [operation for operation, _table in calls] == ["DeleteItem"]


# --- D10: a failed condition is an answer, not an error ---------------------------------------------


def test_add_of_a_present_key_counts_no_error(cache):
    cache.set("k", 1)
    table = cache.table
    dynamodb_errors = metrics.DYNAMODB_ERRORS.labels("PutItem", table, "ConditionalCheckFailedException")
    before = dynamodb_errors._value.get()
    conditional = metrics.DYNAMODB_CONDITIONAL_FAILURES.labels("PutItem", table)
    conditional_before = conditional._value.get()
    assert cache.add("k", 2) is False
    assert dynamodb_errors._value.get() == before
    assert conditional._value.get() == conditional_before + 1


# --- stronger checks -------------------------------------------------------------------------------


def requests(cache, result: str) -> float:
    return metrics.CACHE_BACKEND_REQUESTS.labels(cache.alias, result)._value.get()


def test_hits_and_misses_are_counted_per_key(cache, clock):
    cache.set_many({"a": 1, "b": 2})
    cache.set("short", 1, timeout=1)
    clock.now += 2
    hits, misses = requests(cache, "hit"), requests(cache, "miss")
    cache.get("a")
    cache.get("nope")
    cache.get("short")  # expired but still in the table: a miss
    cache.get_many(["a", "b", "nope", "short"])
    assert requests(cache, "hit") == hits + 3
    assert requests(cache, "miss") == misses + 4


@pytest.mark.integration
def test_concurrent_incr_is_a_compare_and_set(live_dynamodb):
    cache = make_cache(OPTIONS={"ALIAS": "incr-cas"})
    cache.set("n", 0)
    barrier = threading.Barrier(4)
    returned: list[int] = []
    failures: list[ValueError] = []
    lock = threading.Lock()
    conditional = metrics.DYNAMODB_CONDITIONAL_FAILURES.labels("UpdateItem", cache.table)
    lost_before = conditional._value.get()

    def worker():
        barrier.wait()
        for _ in range(10):
            try:
                value = cache.incr("n")
            except ValueError as exc:  # contended past INCR_ATTEMPTS: reported, never a lost step
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    returned.append(value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # every acknowledged incr got its own value, and the final value counts exactly those
    assert sorted(returned) == list(range(1, len(returned) + 1))
    assert cache.get("n") == len(returned) == 40 - len(failures)
    assert returned
    assert conditional._value.get() > lost_before  # the writers really met: some compare-and-sets lost


@pytest.mark.filterwarnings("ignore::django.core.cache.CacheKeyWarning")
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c", long_key("1"), long_key("2"), long_key("3")]), min_size=1),
    moves=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=4),
)
def test_get_many_never_answers_with_another_keys_value(cache, keys, moves):
    universe = ["a", "b", "c", long_key("1"), long_key("2"), long_key("3")]
    cache.clear()
    origin = {}  # partition key's owner -> the key whose genuine item it holds now
    for key in set(keys):
        cache.set(key, f"value of {key[-8:]}")
        origin[key] = key
    for source, target in moves:  # someone who can write the table copies one key's item under another's PK
        item = raw_item(cache, universe[source])
        if item is None or source == target:
            continue
        item["PK"] = cache_pk(cache.make_key(universe[target]))
        put_raw(cache, item)
        origin[universe[target]] = origin[universe[source]]
    got = cache.get_many(universe)
    assert got == {key: f"value of {key[-8:]}" for key, holder in origin.items() if holder == key}


def test_long_keys_warn_but_are_stored(cache):
    with pytest.warns(CacheKeyWarning):
        cache.set(long_key("w"), 1)
    assert cache.get(long_key("w")) == 1
