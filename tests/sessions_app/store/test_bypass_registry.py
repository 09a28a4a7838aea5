"""The shared bypass registry (sessions_app/services/store/bypass.py): a write one process made while Redis was
away from it reaches every other process's view of Redis, by their recovery or by the next flush run.

"Another process" is this one with its memory forgotten (``bypassed_forget``: the phones it wrote without
Redis and the Redis failures it saw), as the two-process history checker found it in a real second process
(docs/RELIABILITY.md, the two processes after a full Redis partition heals).
"""

from __future__ import annotations

import pytest

import lizzy.redis
from lizzy import metrics
from lizzy.cache_backend import CACHE_TABLE
from lizzy.dynamodb import ERR_THROTTLED, DynamoDBThrottled, dynamodb_get_item
from lizzy.redis import SESSION_KEY, RedisUnavailable, key
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store import bypass as bypass_module
from sessions_app.services.store import cached, redis_only, write_behind
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.bypass import REGISTRY_PK, bypass_register, bypass_registry_read
from sessions_app.services.store.cached import RecoveryPending
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.write_behind import sessions_flush
from tests.fixtures.dynamodb_hooks import record_calls

PHONE, OTHER = "+12065550101", "+12065550102"


@pytest.fixture
def write_behind_mode(dynamodb, session_redis, use_mode):
    use_mode("cached_write_behind")


def durable(phone):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def _away(**kwargs):
    raise RedisUnavailable("Redis is unreachable (ConnectionError).")


def write_through_elsewhere(monkeypatch, phone, node):
    """Another process, Redis away from it only, writes ``phone`` through to DynamoDB; Redis keeps its
    older copy. Then this process takes over, remembering nothing of it and having seen no Redis error."""
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_cas", _away)
        away.setattr(redis_only, "redis_session_get", _away)
        away.setattr(cached, "redis_session_set_if_newer", _away)
        current = session_get(phone=phone)  # from DynamoDB: Redis is away
        current.current_node = node
        written = session_save(session=current, expected_version=current.version)
    redis_breaker.reset()
    cached.bypassed_forget()
    return written


def durable_session(phone):
    return DynamoDBSessionStore().load(phone)


def flushed_session(phone, node="A"):
    session = session_new(phone=phone)
    session.current_node = node
    session_save(session=session, expected_version=None)
    sessions_flush()  # durable at version 1, and a clean copy at version 1 in Redis
    assert session_get(phone=phone).version == 1


def test_a_process_that_never_saw_redis_fail_stops_serving_the_stale_copy_after_the_next_flush(
    write_behind_mode, monkeypatch
):
    # given a clean Redis copy at version 1, and version 2 written through by another process
    flushed_session(PHONE)
    written = write_through_elsewhere(monkeypatch, PHONE, "WRITTEN_THROUGH")
    assert written.version == 2
    assert session_get(phone=PHONE).version == 1  # the window: this process saw no Redis error
    # when the next flush runs
    result = sessions_flush()
    # then it dropped the stale copy and removed the entry: this process now serves the write-through
    assert (result.bypass_read, result.bypass_dropped, result.bypass_removed) == (True, 1, 1)
    found = session_get(phone=PHONE)
    assert (found.version, found.current_node) == (2, "WRITTEN_THROUGH")
    assert bypass_registry_read() == []


def test_a_recovering_process_applies_the_other_processes_entries_and_keeps_copies_written_on_top(
    write_behind_mode, session_redis, monkeypatch
):
    # given two phones written through by another process (version 2 each, registered) ...
    flushed_session(PHONE)
    flushed_session(OTHER)
    write_through_elsewhere(monkeypatch, PHONE, "WRITTEN_THROUGH")
    write_through_elsewhere(monkeypatch, OTHER, "WRITTEN_THROUGH")
    assert {(e.phone, e.version) for e in bypass_registry_read()} == {(PHONE, 2), (OTHER, 2)}
    # ... and, on OTHER, a copy written on top of that write since (filled at 2, then version 3, dirty)
    session_redis.delete(key(SESSION_KEY, phone=OTHER))
    on_top = session_get(phone=OTHER)
    assert on_top.version == 2
    on_top.current_node = "WRITTEN_ON_TOP"
    session_save(session=on_top, expected_version=2)
    # when this process sees Redis fail once, then uses Redis again (its recovery)
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        assert session_get(phone="+12065550199") is None  # DynamoDB answers: no such session
    redis_breaker.reset()
    assert cached.recovery_pending()
    found = session_get(phone=PHONE)
    # then the stale copy of PHONE was dropped (version 2 served), and OTHER's newer copy stayed
    assert (found.version, found.current_node) == (2, "WRITTEN_THROUGH")
    assert not cached.recovery_pending()
    kept = session_get(phone=OTHER)
    assert (kept.version, kept.current_node) == (3, "WRITTEN_ON_TOP")
    sessions_flush()
    assert durable(OTHER)["currentNode"] == "WRITTEN_ON_TOP"


def test_a_flush_does_not_remove_an_entry_replaced_by_a_newer_write_meanwhile(write_behind_mode, monkeypatch):
    # given an entry at version 2
    flushed_session(PHONE)
    write_through_elsewhere(monkeypatch, PHONE, "WRITTEN_THROUGH")
    real_apply = write_behind.bypass_apply

    def apply_while_another_write_registers(written, **kwargs):
        dropped = real_apply(written, **kwargs)
        bypass_register(phone=PHONE, version=3)  # another write through, after the flush read the registry
        return dropped

    monkeypatch.setattr(write_behind, "bypass_apply", apply_while_another_write_registers)
    # when the flush removes what it applied
    result = sessions_flush()
    # then the newer entry stays, for the next run and for every recovery
    assert (result.bypass_dropped, result.bypass_removed) == (1, 0)
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, 3)]


def test_an_entry_never_goes_down_and_the_flush_adds_one_query_of_the_registry(write_behind_mode):
    assert bypass_register(phone=PHONE, version=5)
    assert bypass_register(phone=PHONE, version=4)  # a slower writer's older write: the entry stays at 5
    assert [(e.phone, e.version) for e in bypass_registry_read()] == [(PHONE, 5)]
    item = dynamodb_get_item(table=CACHE_TABLE.name, key={"PK": REGISTRY_PK, "SK": PHONE}, consistent=True)
    assert item["ttl"] > 0  # DynamoDB's TTL removes it one session lifetime later
    sessions_flush()
    with record_calls() as calls:
        sessions_flush()  # nothing dirty, nothing registered
    assert calls.count(("Query", CACHE_TABLE.name)) == 1
    assert [op for op, _ in calls if op != "GetItem"] == ["Query"]  # and the fence's GetItem, as before


def test_a_hot_hit_stays_one_redis_get_and_no_dynamodb_call(write_behind_mode, monkeypatch):
    # given a process that saw Redis fail once and has recovered
    flushed_session(PHONE)
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        session_get(phone=PHONE)
    redis_breaker.reset()
    session_get(phone=PHONE)  # the recovery: one Query of the registry
    redis_calls = []
    real_call = lizzy.redis.redis_call

    def counted(function, *args, **kwargs):
        redis_calls.append(getattr(function, "__name__", str(function)))
        return real_call(function, *args, **kwargs)

    monkeypatch.setattr(lizzy.redis, "redis_call", counted)
    # when it serves a hot hit
    with record_calls() as calls:
        assert session_get(phone=PHONE).version == 1
    # then one Redis GET and no DynamoDB call
    assert (redis_calls, calls) == (["get"], [])


def test_a_write_behind_recovery_that_cannot_read_the_registry_refuses_and_keeps_the_unflushed_turns(
    write_behind_mode, monkeypatch
):
    # Found by the two-process soak (seed 509 with the first version of the registry): the recovering
    # process read DynamoDB instead, which lacked a turn still unflushed in Redis, and wrote on top of it.
    flushed_session(PHONE)
    unflushed = session_get(phone=PHONE)
    unflushed.current_node = "UNFLUSHED"
    session_save(session=unflushed, expected_version=1)  # version 2, only in Redis
    # given this process saw Redis fail, and DynamoDB throttles the registry's Query when Redis is back
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        assert session_get(phone=PHONE).version == 1  # DynamoDB's copy, while Redis is away
    redis_breaker.reset()

    def throttled():
        raise DynamoDBThrottled(ERR_THROTTLED.format(table=CACHE_TABLE.name))

    with monkeypatch.context() as throttling:
        throttling.setattr(cached, "bypass_registry_read", throttled)
        # when it serves a read or a turn; then it refuses (503) rather than answer from DynamoDB
        with pytest.raises(RecoveryPending):
            session_get(phone=PHONE)
        stale = durable_session(PHONE)
        with pytest.raises(RecoveryPending):
            session_save(session=stale, expected_version=1)
    # and once the registry answers (the next try comes LIZZY_BREAKER_RESET_SECONDS after a failed one),
    # the unflushed turn is served and flushed
    monkeypatch.setattr(cached, "_registry_retry_at", 0.0)
    found = session_get(phone=PHONE)
    assert (found.version, found.current_node) == (2, "UNFLUSHED")
    sessions_flush()
    assert durable(PHONE)["currentNode"] == "UNFLUSHED"


def test_a_cached_recovery_that_cannot_read_the_registry_reads_dynamodb(dynamodb, session_redis, use_mode, monkeypatch):
    use_mode("cached")
    flushed_session(PHONE)
    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_get", _away)
        session_get(phone=PHONE)
    redis_breaker.reset()

    def throttled():
        raise DynamoDBThrottled(ERR_THROTTLED.format(table=CACHE_TABLE.name))

    monkeypatch.setattr(cached, "bypass_registry_read", throttled)
    with record_calls() as calls:
        assert session_get(phone=PHONE).version == 1  # the store of record answers
    assert ("GetItem", SESSIONS.name) in calls
    assert cached.recovery_pending()


def test_a_registration_dynamodb_refuses_leaves_the_write_standing_counted_and_known_to_its_writer(
    write_behind_mode, monkeypatch
):
    # given a clean Redis copy at version 1, and the registry's UpdateItem throttled on every try
    flushed_session(PHONE)
    failed = metrics.SESSION_BYPASS_REGISTRY.labels("register_failed")._value.get()

    def refused(**kwargs):
        raise DynamoDBThrottled(ERR_THROTTLED.format(table=CACHE_TABLE.name))

    # when this process writes version 2 through to DynamoDB while Redis is away from it
    with monkeypatch.context() as away:
        away.setattr(bypass_module, "dynamodb_update_item", refused)
        away.setattr(redis_only, "redis_session_cas", _away)
        away.setattr(redis_only, "redis_session_get", _away)
        away.setattr(cached, "redis_session_set_if_newer", _away)
        current = session_get(phone=PHONE)
        current.current_node = "THROUGH"
        written = session_save(session=current, expected_version=1)
    redis_breaker.reset()
    # then the write stands (acknowledged, in DynamoDB), the missing entry is counted, none is there
    assert (written.version, durable(PHONE)["currentNode"]) == (2, "THROUGH")
    assert metrics.SESSION_BYPASS_REGISTRY.labels("register_failed")._value.get() == failed + 1
    assert PHONE not in {entry.phone for entry in bypass_registry_read()}
    # and the writer's own memory still drops the older Redis copy before it reads Redis again
    found = session_get(phone=PHONE)
    assert (found.version, found.current_node) == (2, "THROUGH")
