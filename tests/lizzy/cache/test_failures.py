"""A cache that fails is a miss, never a stale value: failed writes delete, errors are counted; config is strict."""

from __future__ import annotations

import pickle
import threading

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from lizzy.cache_backend.backend import ERR_CULLING
from lizzy.observability import alarms
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.lizzy.cache.helpers import errors, make_cache, raw_item


@pytest.fixture
def cache(dynamodb):
    return make_cache(TIMEOUT=300, OPTIONS={"ALIAS": "failures-test"})


def failing(*operations: str, code: str = "InternalServerError"):
    """A fault hook: the named operations fail as DynamoDB would answer; the others go through."""

    def hook(operation, params, call):
        if operation in operations:
            raise client_error(code, "injected", operation)
        return call(params)

    return hook


class Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("not this one")


# --- a failed write deletes the old value -------------------------------------------------------------


def test_a_set_that_dynamodb_refuses_deletes_the_old_value(cache):
    cache.set("session:+12065550100", {"cart": ["old mower"]})
    before = errors(cache, "set", "dynamodb_error")
    with fault_injection(failing("PutItem")):
        cache.set("session:+12065550100", {"cart": ["new mower"]})
    assert cache.get("session:+12065550100") is None  # a miss, never the old session
    assert errors(cache, "set", "dynamodb_error") == before + 1


def test_a_set_of_a_value_pickle_cannot_hold_raises_and_deletes_the_old_value(cache):
    cache.set("k", "old")
    with pytest.raises(pickle.PicklingError):
        cache.set("k", Unpicklable())
    assert raw_item(cache, "k") is None
    cache.set("k", "old")
    with pytest.raises(pickle.PicklingError):
        cache.set_many({"k": Unpicklable()})
    assert raw_item(cache, "k") is None


def test_add_of_an_unpicklable_value_raises_and_leaves_the_present_value(cache):
    cache.set("k", "present")
    with pytest.raises(pickle.PicklingError):
        cache.add("k", Unpicklable())
    assert cache.get("k") == "present"


def test_a_set_many_that_fails_deletes_every_old_value_it_can(cache):
    cache.set_many({"a": 1, "b": 2})
    calls = []

    def hook(operation, params, call):
        calls.append(operation)
        if operation == "BatchWriteItem" and calls.count("BatchWriteItem") == 1:
            raise client_error("InternalServerError", "injected", operation)
        return call(params)

    with fault_injection(hook):
        assert sorted(cache.set_many({"a": 10, "b": 20})) == ["a", "b"]
    assert cache.get_many(["a", "b"]) == {}


def test_when_the_delete_fails_too_nothing_raises_and_both_are_counted(cache):
    cache.set("k", "old")
    before = errors(cache, "set", "dynamodb_error")
    with fault_injection(failing("PutItem", "DeleteItem")):
        cache.set("k", "new")  # DynamoDB is down: nothing can be done, and nothing is raised
    assert errors(cache, "set", "dynamodb_error") == before + 2  # the put and the delete


def test_reads_that_fail_are_misses_counted_with_the_reason(cache):
    cache.set("k", 1)
    before = errors(cache, "get", "dynamodb_throttled")
    with fault_injection(failing("GetItem", "BatchGetItem", code="ThrottlingException")):
        assert cache.get("k", "default") == "default"
        assert cache.get_many(["k"]) == {}
        assert cache.has_key("k") is False
    assert errors(cache, "get", "dynamodb_throttled") == before + 1
    assert cache.get("k") == 1


@pytest.mark.django_db
def test_cache_errors_are_on_the_metrics_page(cache, client, settings):
    settings.LIZZY_METRICS_TOKEN = "scrape-token-for-tests"
    with fault_injection(failing("GetItem")):
        cache.get("k")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").content.decode()
    assert 'lizzy_cache_errors_total{cache="failures-test",operation="get",reason="dynamodb_error"}' in body


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"OPTIONS": {"MAX_ENTRIES": 1000}},
        {"OPTIONS": {"CULL_FREQUENCY": 3}},
        {"max_entries": 1000},
        {"cull_frequency": 0},
    ],
)
def test_culling_is_refused_at_configuration(params):
    with pytest.raises(ImproperlyConfigured, match="does not cull"):
        make_cache(**params)


def test_culling_is_refused_through_the_caches_setting(settings):
    settings.CACHES = {
        **settings.CACHES,
        "bounded": {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "OPTIONS": {"MAX_ENTRIES": 10}},
    }
    with pytest.raises(ImproperlyConfigured) as raised:
        caches.create_connection("bounded")
    assert str(raised.value) == ERR_CULLING.format(names="MAX_ENTRIES")


def test_unknown_options_and_serializers_are_refused():
    with pytest.raises(ImproperlyConfigured, match="CONSISTENT_READS"):
        make_cache(OPTIONS={"CONSISTENT_READS": False})  # a typo, not silently ignored
    with pytest.raises(ImproperlyConfigured, match="'yaml'"):
        make_cache(OPTIONS={"SERIALIZER": "yaml"})
    with pytest.raises(ImproperlyConfigured):
        make_cache(OPTIONS={"SERIALIZER": "lizzy.cache_backend.codec.encode_value"})  # not a serializer


# --- consistent reads -------------------------------------------------------------------------------


def consistency(cache, action):
    seen = []

    def hook(operation, params, call):
        if operation in ("GetItem", "BatchGetItem"):
            consistent = params.get("ConsistentRead")
            if consistent is None:
                consistent = next(iter(params["RequestItems"].values()))["ConsistentRead"]
            seen.append((operation, consistent))
        return call(params)

    with fault_injection(hook):
        action()
    return seen


def test_reads_are_consistent_by_default_for_read_your_writes(cache):
    cache.set("n", 1)
    assert consistency(cache, lambda: cache.get("n")) == [("GetItem", True)]
    assert consistency(cache, lambda: cache.get_many(["n"])) == [("BatchGetItem", True)]
    assert consistency(cache, lambda: cache.has_key("n")) == [("GetItem", True)]


def test_eventually_consistent_reads_when_configured_but_incr_stays_consistent(dynamodb):
    cache = make_cache(OPTIONS={"CONSISTENT_READ": False})
    cache.set("n", 1)
    assert consistency(cache, lambda: cache.get("n")) == [("GetItem", False)]
    assert consistency(cache, lambda: cache.get_many(["n"])) == [("BatchGetItem", False)]
    assert consistency(cache, lambda: cache.incr("n")) == [("GetItem", True)]


# --- JSON as an option ------------------------------------------------------------------------------


def test_the_json_serializer_stores_readable_json_and_holds_only_json(dynamodb):
    cache = make_cache(OPTIONS={"SERIALIZER": "json", "ALIAS": "json-test"})
    cache.set("k", {"text": "hola ✓", "n": [1, 2.5, None, True]})
    item = raw_item(cache, "k")
    assert (item["fmt"], item["data"]) == ("json", '{"text":"hola ✓","n":[1,2.5,null,true]}')
    assert cache.get("k") == {"text": "hola ✓", "n": [1, 2.5, None, True]}
    cache.set("tuple", (1, 2))
    assert cache.get("tuple") == [1, 2]  # what JSON cannot hold, documented in docs/CACHE.md
    cache.set("int-keys", {1: "a"})
    assert cache.get("int-keys") == {"1": "a"}
    cache.set("k", "old")
    with pytest.raises(TypeError):
        cache.set("k", b"bytes")
    assert raw_item(cache, "k") is None  # the failed set deleted the old value
    with pytest.raises(ValueError, match="Out of range float"):
        cache.set("nan", float("nan"))
    cache.set("big", {"rows": ["x" * 40] * 1000})
    assert raw_item(cache, "big")["fmt"] == "json+zlib"
    assert cache.get("big") == {"rows": ["x" * 40] * 1000}


# --- concurrency over HTTP --------------------------------------------------------------------------


@pytest.mark.integration
def test_concurrent_incr_loses_no_step(live_dynamodb):
    cache = make_cache(OPTIONS={"ALIAS": "incr-race"})
    cache.set("n", 0)
    failures = []

    def worker():
        for _ in range(8):
            try:
                cache.incr("n")
            except ValueError as exc:  # contended past INCR_ATTEMPTS: reported, not lost silently
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("n") == 32 - len(failures)


@pytest.mark.integration
def test_two_adds_race_and_exactly_one_wins(live_dynamodb):
    cache = make_cache(OPTIONS={"ALIAS": "add-race"})
    for round_ in range(5):
        results = []
        barrier = threading.Barrier(4)

        def adder(n, round_=round_, results=results, barrier=barrier):
            barrier.wait()
            results.append((cache.add(f"lock-{round_}", n), n))

        threads = [threading.Thread(target=adder, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [n for won, n in results if won]
        assert len(winners) == 1
        assert cache.get(f"lock-{round_}") == winners[0]


# --- the alarms' own cache --------------------------------------------------------------------------


class Runaway(BaseException):
    pass


def test_a_dynamodb_error_recorded_through_a_failing_dynamodb_cache_does_not_recurse(dynamodb, settings):
    # given: the DynamoDB cache is Django's default cache, and DynamoDB fails every write
    settings.CACHES = {"default": {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "OPTIONS": {"ALIAS": "dflt"}}}
    calls = []

    def hook(operation, params, call):
        calls.append(operation)
        if len(calls) > 50:
            raise Runaway(calls[:10])  # not an Exception: no best-effort handler swallows it
        if operation in ("PutItem", "UpdateItem", "GetItem"):
            raise client_error("InternalServerError", "injected", operation)
        return call(params)

    # when: one DynamoDB error is recorded for the alarms
    with fault_injection(hook):
        alarms.dynamodb_error_listener("system", "PutItem", "LizzySMSSessions", "InternalServerError")
    # then: the recording's own cache calls fail once each, and are not recorded again
    assert len(calls) <= 6, calls
