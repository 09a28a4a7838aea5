"""Review of the shared bypass registry (issue 13, merge 2fe5809): write paths that reach DynamoDB without the
Redis lineage yet are not registered, a stale copy that outlives its entry, and the cost of a hot hit.

"Another process" is this one with its memory forgotten (``bypassed_forget``), as in
tests/sessions_app/store/test_bypass_registry.py.
"""

from __future__ import annotations

import time

import pytest

import lizzy.redis
from lizzy.cache_backend import CACHE_TABLE
from lizzy.dynamodb import ERR_THROTTLED, DynamoDBThrottled, dynamodb_update_item
from lizzy.redis import RedisUnavailable
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete, session_new, session_save
from sessions_app.services.store import cached, redis_only, write_behind
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.bypass import REGISTRY_PK, bypass_register, bypass_registry_read
from sessions_app.services.store.cached import RecoveryPending
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.write_behind import sessions_flush
from tests.fixtures.dynamodb_hooks import fault_injection, record_calls
from tests.lizzy.cache.helpers import make_cache

PHONE, OTHER = "+12065550131", "+12065550132"


@pytest.fixture
def write_behind_mode(dynamodb, session_redis, use_mode):
    use_mode("cached_write_behind")


def _away(*args, **kwargs):
    raise RedisUnavailable("Redis is unreachable (ConnectionError).")


def durable_session(phone):
    return DynamoDBSessionStore().load(phone)


def flushed_session(phone, node="A"):
    session = session_new(phone=phone)
    session.current_node = node
    session_save(session=session, expected_version=None)
    sessions_flush()  # durable at version 1, and a clean copy at version 1 in Redis
    assert session_get(phone=phone).version == 1


def unflushed_turns(phone, turns):
    """Write-behind turns on the hot copy, only in Redis (dirty, base 1)."""
    for index in range(turns):
        current = session_get(phone=phone)
        current.current_node = f"UNFLUSHED{index}"
        session_save(session=current, expected_version=current.version)


def test_a_write_through_whose_fill_redis_refuses_is_registered_and_never_hidden_by_the_older_lineage(
    write_behind_mode, monkeypatch
):
    # given version 1 in DynamoDB and an older lineage in Redis: two unflushed turns (dirty, version 3, base 1)
    flushed_session(PHONE)
    unflushed_turns(PHONE, 2)
    # when a turn built on DynamoDB's copy (read while Redis failed) meets one more Redis error on its CAS,
    # so it is written through, and Redis answers again for the fill (which refuses: a dirty copy is there)
    stale = durable_session(PHONE)
    stale.current_node = "WRITTEN_THROUGH"
    with monkeypatch.context() as flap:
        flap.setattr(redis_only, "redis_session_cas", _away)
        written = session_save(session=stale, expected_version=1)
    assert written.version == 2
    # then the write is registered, and this very process reads what it acknowledged, not the older lineage
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, 2)]
    found = session_get(phone=PHONE)
    assert (found.version, found.current_node) == (2, "WRITTEN_THROUGH")


def test_the_writers_next_turn_after_a_refused_fill_survives_the_flush(write_behind_mode, monkeypatch):
    # given the write-through of the test above (DynamoDB at 2, Redis's dirty lineage at 3, base 1)
    flushed_session(PHONE)
    unflushed_turns(PHONE, 2)
    stale = durable_session(PHONE)
    stale.current_node = "WRITTEN_THROUGH"
    with monkeypatch.context() as flap:
        flap.setattr(redis_only, "redis_session_cas", _away)
        session_save(session=stale, expected_version=1)
    # when the same process (it saw the Redis error) takes the next turn on what it reads
    current = session_get(phone=PHONE)
    current.current_node = "NEXT_TURN"
    acknowledged = session_save(session=current, expected_version=current.version)
    sessions_flush()
    # then the acknowledged turn survives the flush
    found = session_get(phone=PHONE)
    assert (found.version, found.current_node) == (acknowledged.version, "NEXT_TURN")


def test_a_delete_written_through_over_an_older_dirty_lineage_never_serves_the_session_again(
    write_behind_mode, monkeypatch
):
    # given version 1 in DynamoDB and unflushed turns in Redis (dirty, version 3, base 1)
    flushed_session(PHONE)
    unflushed_turns(PHONE, 2)
    # when an operator who saw DynamoDB's copy deletes it while Redis fails once (the dirty tombstone call),
    # and Redis answers again for the write-through's tombstone
    with monkeypatch.context() as flap:
        flap.setattr(write_behind, "redis_session_tombstone", _away)
        assert session_delete(phone=PHONE, expected_version=1)
    # then the deleted session is gone for this process (which saw the error) and is registered for the others
    assert session_get(phone=PHONE) is None
    assert [e.phone for e in bypass_registry_read()] == [PHONE]


def test_a_fill_that_lands_after_the_flush_removed_the_entry_does_not_bring_a_deleted_session_back(
    dynamodb, session_redis, use_mode, monkeypatch
):
    # The loss-window table promises: the stale copy lives at most until the first flush run that begins
    # after the write's acknowledgement. A cache-aside fill read before the write but landing after that run
    # is a copy no entry covers any more (the apply found no key to drop, then removed the entry).
    use_mode("cached")
    flushed_session(PHONE)
    session_redis.delete(lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=PHONE))  # not in the hot tier
    real_load = DynamoDBSessionStore.load
    raced = []

    def load_then_race(self, phone):
        found = real_load(self, phone)
        if phone == PHONE and not raced:
            raced.append(found.version)
            # another process, Redis away from it, deletes the session (registered), then recovers ...
            with monkeypatch.context() as away:
                away.setattr(cached, "redis_session_tombstone", _away)
                away.setattr(cached, "redis_session_forget_clean", _away)
                assert session_delete(phone=PHONE, expected_version=1)
            redis_breaker.reset()
            cached.bypassed_forget()
            # ... and a flush run applies and removes the entry
            assert sessions_flush().bypass_read  # the apply finds no key to drop
        return found

    monkeypatch.setattr(DynamoDBSessionStore, "load", load_then_race)
    # when this process (no Redis error seen) finishes its read begun before the delete: it fills version 1
    assert session_get(phone=PHONE).version == 1  # read before the delete: fine
    monkeypatch.setattr(DynamoDBSessionStore, "load", real_load)
    # then after the next flush run the deleted session is not served any more
    sessions_flush()
    assert session_get(phone=PHONE) is None


def test_a_hot_hit_stays_one_redis_get_after_a_recovery_that_raised_a_remembered_version(
    write_behind_mode, monkeypatch
):
    # given this process wrote PHONE through at version 2 while Redis was away (remembered and registered),
    # and another process wrote it through at version 3 later (registered: the entry went up to 3)
    flushed_session(PHONE)
    flushed_session(OTHER)
    stale = durable_session(PHONE)
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_cas", _away)
        away.setattr(redis_only, "redis_session_get", _away)
        away.setattr(cached, "redis_session_set_if_newer", _away)
        session_save(session=stale, expected_version=1)
    assert bypass_register(phone=PHONE, version=3)
    redis_breaker.reset()
    session_get(phone=OTHER)  # the recovery: the registry read, PHONE's stale copy dropped
    redis_calls = []
    real_call = lizzy.redis.redis_call

    def counted(function, *args, **kwargs):
        redis_calls.append(getattr(function, "__name__", type(function).__name__))
        return real_call(function, *args, **kwargs)

    monkeypatch.setattr(lizzy.redis, "redis_call", counted)
    # when it serves a hot hit of another phone
    with record_calls() as calls:
        assert session_get(phone=OTHER).version == 1
    # then one Redis GET and no DynamoDB call
    assert (redis_calls, calls) == (["get"], [])
    assert ("GetItem", SESSIONS.name) not in calls


def test_a_dirty_tombstone_that_outlives_its_entry_does_not_hide_a_write_from_a_recovering_process(
    write_behind_mode, monkeypatch
):
    # An entry lives one session lifetime because "the stale copy has expired by then"; a write-behind
    # tombstone never expires until a flush applies it, and a full partition stops every flush.
    # given version 1 in DynamoDB, deleted in Redis (a dirty tombstone, unflushed)
    flushed_session(PHONE)
    assert session_delete(phone=PHONE, expected_version=1)
    # and another process, Redis away from it, writes a turn through on DynamoDB's copy (registered) ...
    stale = durable_session(PHONE)
    stale.current_node = "WRITTEN_THROUGH"
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_cas", _away)
        away.setattr(redis_only, "redis_session_get", _away)
        away.setattr(cached, "redis_session_set_if_newer", _away)
        written = session_save(session=stale, expected_version=1)
    redis_breaker.reset()
    cached.bypassed_forget()
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, written.version)]
    # ... and the partition outlasts the entry's lifetime (its ttl is past: DynamoDB has not swept it yet)
    dynamodb_update_item(
        table=CACHE_TABLE.name,
        key={"PK": REGISTRY_PK, "SK": PHONE},
        update="SET #ttl = :ttl",
        names={"#ttl": "ttl"},
        values={":ttl": int(time.time()) - 1},
        return_values="NONE",
    )
    # when this process, which saw Redis fail during the partition, recovers and reads the phone
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        session_get(phone=OTHER)
    redis_breaker.reset()
    found = session_get(phone=PHONE)
    assert not cached.recovery_pending()
    # then it serves the acknowledged write, not the older fork's tombstone
    assert found is not None
    assert (found.version, found.current_node) == (written.version, "WRITTEN_THROUGH")


# --- What held ------------------------------------------------------------------------------------


def test_the_registry_read_follows_every_query_page_and_a_flush_applies_entries_past_the_first_one(
    write_behind_mode, session_redis
):
    # given 7 entries of phones with an older copy in Redis, and DynamoDB answering the registry's Query 2 items
    # a page (as past 1 MB)
    phones = [f"+1206555{n:04d}" for n in range(7)]
    for phone in phones:
        flushed_session(phone)
    for phone in phones:
        assert bypass_register(phone=phone, version=2)
    pages = []

    def two_per_page(operation, params, send):
        if operation == "Query" and REGISTRY_PK in str(params):
            pages.append(params.get("ExclusiveStartKey"))
            return send({**params, "Limit": 2})
        return send(params)

    with fault_injection(two_per_page):
        entries = bypass_registry_read()
    # then every entry is read, one Query per page
    assert sorted(e.phone for e in entries) == phones
    assert len(pages) == 4
    with fault_injection(two_per_page):
        result = sessions_flush()
    assert (result.bypass_read, result.bypass_dropped, result.bypass_removed) == (True, 7, 7)
    assert bypass_registry_read() == []


def test_the_dynamodb_calls_of_a_turn_in_each_mode_and_of_a_flush_run_with_entries(dynamodb, session_redis, use_mode):
    use_mode("dynamodb_only")
    session_save(session=session_new(phone=PHONE), expected_version=None)
    with record_calls() as calls:
        current = session_get(phone=PHONE)
        session_save(session=current, expected_version=current.version)
    assert calls == [("GetItem", SESSIONS.name), ("PutItem", SESSIONS.name)]
    use_mode("cached")
    session_get(phone=PHONE)  # filled
    with record_calls() as calls:
        current = session_get(phone=PHONE)
        session_save(session=current, expected_version=current.version)
    assert calls == [("PutItem", SESSIONS.name)]
    use_mode("cached_write_behind")
    flushed_session(OTHER)
    with record_calls() as calls:
        current = session_get(phone=PHONE)
        session_save(session=current, expected_version=current.version)
    assert calls == []
    # a flush run with two entries: the fence's GetItem, one Query, one conditional DeleteItem per entry
    # applied (OTHER's older copy dropped; a phone Redis has no copy of keeps its entry), the dirty PutItem
    bypass_register(phone=OTHER, version=2)
    bypass_register(phone="+12065550133", version=2)
    with record_calls() as calls:
        result = sessions_flush()
    assert result.written == 1
    assert sorted(calls) == sorted(
        [
            ("GetItem", CACHE_TABLE.name),
            ("Query", CACHE_TABLE.name),
            ("DeleteItem", CACHE_TABLE.name),
            ("PutItem", SESSIONS.name),
        ]
    )


def test_registry_entries_survive_a_cache_clear_and_a_cache_key_spelled_like_the_registry(dynamodb):
    assert bypass_register(phone=PHONE, version=2)
    cache = make_cache(location=CACHE_TABLE.name, KEY_FUNCTION=lambda key, key_prefix, version: key)
    cache.set(REGISTRY_PK, "a cache value")  # a key spelled like the registry's partition
    cache.set(PHONE, "another")
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, 2)]
    cache.clear()
    assert cache.get(REGISTRY_PK) is None
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, 2)]


class _Clock:
    """``time`` for cached.py with a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


def test_the_write_behind_refusal_ends_once_the_registry_answers_again_after_the_retry_period(
    write_behind_mode, monkeypatch, settings
):
    flushed_session(PHONE)
    clock = _Clock()
    monkeypatch.setattr(cached, "time", clock)
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        session_get(phone=PHONE)  # this process sees Redis fail
    redis_breaker.reset()

    def throttled():
        raise DynamoDBThrottled(ERR_THROTTLED.format(table=CACHE_TABLE.name))

    with monkeypatch.context() as throttling:
        throttling.setattr(cached, "bypass_registry_read", throttled)
        with pytest.raises(RecoveryPending):
            session_get(phone=PHONE)
    # the registry answers again: refused until the retry period has passed, then served, for good
    with pytest.raises(RecoveryPending):
        session_get(phone=PHONE)
    clock.now += settings.LIZZY_BREAKER_RESET_SECONDS
    assert session_get(phone=PHONE).version == 1
    assert not cached.recovery_pending()
    clock.now += 3600
    assert session_get(phone=PHONE).version == 1
