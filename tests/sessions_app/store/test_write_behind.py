"""The write-behind flush: batches, concurrent writes, two flushers, backlog, version guard, beat entry."""

from __future__ import annotations

import threading
import time

import pytest

from lizzy import metrics
from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.redis import (
    DIRTY_HASH_KEY,
    FLUSH_LOCK_KEY,
    SESSION_KEY,
    RedisUnavailable,
    key,
    redis_lock_acquire,
    redis_lock_release,
)
from lizzy.tables import SESSIONS
from sessions_app import tasks
from sessions_app.selectors import session_get
from sessions_app.services.sessions import SessionConflict, session_new, session_save
from sessions_app.services.store import cached, write_behind
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from tests.fixtures.dynamodb_hooks import record_calls

PHONES = [f"+1206555{n:04d}" for n in range(60)]


def durable(phone):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


@pytest.fixture
def write_behind_mode(dynamodb, session_redis, use_mode):
    use_mode("cached_write_behind")


def test_flush_writes_every_dirty_session_with_one_conditional_put_each(write_behind_mode):
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    assert flush_backlog().size == 60
    with record_calls() as calls:
        result = sessions_flush()
    assert [op for op, _ in calls].count("PutItem") == 60  # BatchWriteItem takes no condition
    assert (result.written, result.cleared) == (60, 60)
    assert all(durable(phone)["version"] == 1 for phone in PHONES)
    assert flush_backlog().size == 0
    assert metrics.FLUSH_BACKLOG._value.get() == 0


def test_a_write_during_the_flush_stays_dirty_and_goes_out_next_time(write_behind_mode, monkeypatch):
    # given
    first = session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    real_put = write_behind.dynamodb_put_item

    def put_with_a_concurrent_save(**kwargs):
        # while the flush is writing version 1, the SMS engine writes version 2
        newer = first.copy()
        newer.current_node = "WRITTEN_DURING_FLUSH"
        session_save(session=newer, expected_version=1)
        return real_put(**kwargs)

    monkeypatch.setattr(write_behind, "dynamodb_put_item", put_with_a_concurrent_save)
    # when
    result = sessions_flush()
    # then: version 1 reached DynamoDB but the phone is still dirty, for version 2
    assert (result.written, result.cleared) == (1, 0)
    assert durable(PHONES[0])["version"] == 1
    assert flush_backlog().size == 1
    monkeypatch.setattr(write_behind, "dynamodb_put_item", real_put)
    sessions_flush()
    assert durable(PHONES[0])["currentNode"] == "WRITTEN_DURING_FLUSH"
    assert flush_backlog().size == 0


def test_concurrent_writers_and_flushes_lose_nothing(write_behind_mode):
    for phone in PHONES[:10]:
        session_save(session=session_new(phone=phone), expected_version=None)
    stop = threading.Event()

    def writer():
        for _round in range(5):
            for phone in PHONES[:10]:
                session = session_get(phone=phone)
                session_save(session=session, expected_version=session.version)

    def flusher():
        while not stop.is_set():
            sessions_flush()

    threads = [threading.Thread(target=writer), threading.Thread(target=flusher)]
    for thread in threads:
        thread.start()
    threads[0].join()
    stop.set()
    threads[1].join()
    sessions_flush()
    assert all(durable(phone)["version"] == 6 for phone in PHONES[:10])
    assert flush_backlog().size == 0


@pytest.mark.parametrize(("window", "expected_gets"), [(60.0, 1), (0.0, 60)])
def test_the_lock_check_before_each_write_is_one_get_shared_within_its_window(
    write_behind_mode, monkeypatch, window, expected_gets
):
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    gets = []
    real = write_behind.redis_lock_holds
    monkeypatch.setattr(write_behind, "redis_lock_holds", lambda **kwargs: gets.append(1) or real(**kwargs))
    monkeypatch.setattr(write_behind, "LOCK_CHECK_SECONDS", window)
    assert sessions_flush().written == 60
    assert len(gets) == expected_gets  # a window of 0: one GET per write, as before the sharing


def test_a_lock_lost_mid_flush_stops_the_writes_of_both_pages_in_flight(
    write_behind_mode, session_redis, settings, monkeypatch
):
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    dirty = sorted(session_redis.hgetall(key(DIRTY_HASH_KEY)).items())
    pages = iter([(20, dict(dirty[:20])), (40, dict(dirty[20:40])), (0, dict(dirty[40:]))])
    monkeypatch.setattr(write_behind, "redis_dirty_page", lambda *, cursor, count: next(pages))
    monkeypatch.setattr(write_behind, "LOCK_CHECK_SECONDS", 0.0)
    real_put = write_behind.dynamodb_put_item
    puts = []

    def put(**kwargs):
        puts.append(kwargs["item"]["phone"])
        if len(puts) == 1:
            session_redis.delete(key(FLUSH_LOCK_KEY))  # the lock expires under the first write
        return real_put(**kwargs)

    monkeypatch.setattr(write_behind, "dynamodb_put_item", put)
    assert sessions_flush().status == "lock_lost"
    assert 1 <= len(puts) <= settings.LIZZY_FLUSH_CONCURRENCY  # only the writes already past the check
    assert flush_backlog().size == 60  # no mark cleared: the writes that landed go out again, conditionally


def test_the_lock_watcher_stops_the_writes_within_the_window_after_the_lock_is_lost(
    write_behind_mode, session_redis, monkeypatch
):
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    window = 0.2
    monkeypatch.setattr(write_behind, "LOCK_CHECK_SECONDS", window)
    real_put = write_behind.dynamodb_put_item
    started, lost_at = [], []

    def put(**kwargs):
        started.append(time.monotonic())
        if len(started) == 5:
            session_redis.delete(key(FLUSH_LOCK_KEY))  # the lock expires between two writes
            lost_at.append(time.monotonic())
        time.sleep(0.02)  # a write slow enough that the writers outlive the window
        return real_put(**kwargs)

    monkeypatch.setattr(write_behind, "dynamodb_put_item", put)
    assert sessions_flush().status == "lock_lost"
    assert len(started) < len(PHONES)  # the writers stopped: nobody asked but the watcher
    assert max(started) <= lost_at[0] + window + 0.05  # no write started later than the window allows
    assert flush_backlog().size == len(PHONES)  # no mark cleared


def test_a_second_flusher_waits_for_the_lock(write_behind_mode):
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    token = redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=30)
    try:
        assert sessions_flush().status == "locked"
        assert durable(PHONES[0]) is None
    finally:
        redis_lock_release(name=FLUSH_LOCK_KEY, token=token)
    assert sessions_flush().status == "flushed"
    assert durable(PHONES[0]) is not None


def test_two_flushers_at_once_run_one_at_a_time(write_behind_mode, monkeypatch):
    for phone in PHONES[:30]:
        session_save(session=session_new(phone=phone), expected_version=None)
    inside = threading.Event()
    release = threading.Event()
    real_put = write_behind.dynamodb_put_item

    def slow_put(**kwargs):
        inside.set()
        release.wait(5)
        return real_put(**kwargs)

    monkeypatch.setattr(write_behind, "dynamodb_put_item", slow_put)
    results = []
    first = threading.Thread(target=lambda: results.append(sessions_flush()))
    first.start()
    assert inside.wait(5)
    second = sessions_flush()  # the duplicated beat
    release.set()
    first.join()
    assert second.status == "locked"
    assert results[0].written == 30


def test_a_lock_is_released_only_by_its_holder(write_behind_mode):
    token = redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=30)
    assert redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=30) is None
    assert redis_lock_release(name=FLUSH_LOCK_KEY, token="someone-elses-token") is False
    assert redis_lock_acquire(name=FLUSH_LOCK_KEY, ttl_seconds=30) is None
    assert redis_lock_release(name=FLUSH_LOCK_KEY, token=token) is True


def test_flush_never_moves_dynamodb_backwards_while_the_fence_is_up(write_behind_mode):
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    # given a newer version written straight to DynamoDB, as a save does when Redis is away (fence first)
    write_behind.write_behind_fence_raise()
    newer = {**session_get(phone=PHONES[0]).to_document(), "version": 5, "currentNode": "NEWER"}
    dynamodb_put_item(table=SESSIONS.name, item=newer)
    result = sessions_flush()
    assert (result.written, result.stale_skipped, result.checked) == (0, 1, 1)
    assert durable(PHONES[0])["currentNode"] == "NEWER"
    assert flush_backlog().size == 0
    assert session_get(phone=PHONES[0]).version == 5  # the stale hot copy was dropped


def test_without_the_fence_a_flush_reads_nothing_from_dynamodb_but_the_fence(write_behind_mode):
    for phone in PHONES[:30]:
        session_save(session=session_new(phone=phone), expected_version=None)
    with record_calls() as calls:
        result = sessions_flush()
    operations = [op for op, _ in calls]
    assert "BatchGetItem" not in operations
    assert operations.count("GetItem") == 1  # the fence, once per page
    assert (result.written, result.checked) == (30, 0)


def test_a_save_that_finds_redis_away_raises_the_fence_before_writing_dynamodb(
    write_behind_mode, monkeypatch, settings
):
    from lizzy.cache_backend import CACHE_TABLE
    from lizzy.redis import RedisUnavailable
    from sessions_app.services.store.breaker import redis_breaker

    stored = session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    sessions_flush()  # DynamoDB holds version 1
    assert write_behind.write_behind_fenced() is False

    def redis_away(**kwargs):
        raise RedisUnavailable("Redis is unreachable (ConnectionError).")

    monkeypatch.setattr("sessions_app.services.store.redis_only.redis_session_cas", redis_away)
    monkeypatch.setattr("sessions_app.services.store.redis_only.redis_session_get", redis_away)
    try:
        with record_calls() as calls:
            through = session_save(session=stored, expected_version=1)
        assert through.version == 2
        operations = [op for op, _ in calls]
        assert operations.index("UpdateItem") < operations.index("PutItem")  # fence first, then the write
        fence = dynamodb_get_item(table=CACHE_TABLE.name, key=write_behind.FENCE_KEY, consistent=True)
        assert fence["until"] >= time.time() + settings.LIZZY_FLUSH_FENCE_SECONDS - 5
        assert write_behind.write_behind_fenced() is True
        # a second degraded save within the period does not write the fence again
        with record_calls() as again:
            session_save(session=through, expected_version=2)
        assert [op for op, _ in again].count("UpdateItem") == 0
    finally:
        redis_breaker.reset()


def test_an_unreadable_fence_means_checking(write_behind_mode, monkeypatch):
    from lizzy.dynamodb import DynamoDBUnavailable

    def unavailable(**kwargs):
        raise DynamoDBUnavailable("DynamoDB is unreachable (EndpointConnectionError).")

    monkeypatch.setattr(write_behind, "dynamodb_get_item", unavailable)
    assert write_behind.write_behind_fenced() is True


def test_backlog_reports_size_and_oldest_age(write_behind_mode, session_redis, settings):
    assert flush_backlog().size == 0
    assert flush_backlog().oldest_age_seconds is None
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    session_redis.zadd(f"{settings.LIZZY_REDIS_PREFIX}sessions:dirty:since", {PHONES[0]: 1_000}, xx=True)
    backlog = flush_backlog()
    assert backlog.size == 1
    assert backlog.oldest_age_seconds > 1_000_000
    assert metrics.FLUSH_OLDEST_AGE._value.get() == backlog.oldest_age_seconds


def test_flush_task_runs_the_flush(write_behind_mode):
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    outcome = tasks.sessions_flush_task.delay().get()
    assert outcome["written"] == 1


def test_beat_schedules_the_flush_every_interval(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sessions-flush"]
    assert entry["task"] == "sessions_app.tasks.sessions_flush_task"
    assert entry["schedule"] == settings.LIZZY_FLUSH_INTERVAL == 5.0


def test_a_write_behind_update_is_one_redis_round_trip_and_no_dynamodb_call(write_behind_mode, monkeypatch):
    import lizzy.redis

    stored = session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    real_call, redis_calls = lizzy.redis.redis_call, []
    monkeypatch.setattr(
        lizzy.redis,
        "redis_call",
        lambda function, *a, **k: redis_calls.append(function) or real_call(function, *a, **k),
    )
    with record_calls() as calls:
        updated = session_save(session=stored, expected_version=stored.version)
    assert updated.version == stored.version + 1
    assert calls == []
    assert len(redis_calls) == 2  # the Lua CAS, then the change event
    with pytest.raises(SessionConflict):
        session_save(session=stored, expected_version=stored.version)  # stale: refused by the CAS alone
    assert session_get(phone=PHONES[0]).version == updated.version


def test_a_write_behind_update_of_a_session_not_in_redis_asks_dynamodb_first(write_behind_mode, session_redis):
    stored = session_save(session=session_new(phone=PHONES[1]), expected_version=None)
    sessions_flush()
    session_redis.delete(key(SESSION_KEY, phone=PHONES[1]))  # evicted from the hot tier; DynamoDB has version 1
    with pytest.raises(SessionConflict):
        session_save(session=stored, expected_version=stored.version + 5)
    updated = session_save(session=stored, expected_version=stored.version)
    assert updated.version == stored.version + 1


def test_a_write_made_while_redis_was_away_is_not_overwritten_by_the_older_dirty_copy(write_behind_mode, monkeypatch):
    from lizzy.redis import RedisUnavailable
    from sessions_app.services.store.breaker import redis_breaker

    first = session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    sessions_flush()  # durable: version 1
    dirty = first.copy()
    dirty.current_node = "DIRTY_IN_REDIS"
    session_save(session=dirty, expected_version=1)  # version 2, only in Redis, not flushed

    # given: Redis unreachable from this process (a partition: Redis keeps its data)
    def redis_away(**kwargs):
        raise RedisUnavailable("Redis is unreachable (ConnectionError).")

    with monkeypatch.context() as away:
        away.setattr("sessions_app.services.store.redis_only.redis_session_cas", redis_away)
        away.setattr("sessions_app.services.store.redis_only.redis_session_get", redis_away)
        current = session_get(phone=PHONES[0])  # falls back to DynamoDB: version 1
        assert current.version == 1
        current.current_node = "WRITTEN_WHILE_AWAY"
        acknowledged = session_save(session=current, expected_version=1)  # straight to DynamoDB
    redis_breaker.reset()
    assert acknowledged.version == 2
    # when: Redis is reachable again and the flush runs
    result = sessions_flush()
    # then: the acknowledged write stays; the older lineage's dirty copy is dropped (the write-through's fill
    # found it there and refused, so the write was registered: the run's registry step drops it first)
    assert (result.written, result.stale_skipped, result.bypass_dropped) == (0, 0, 1)
    assert durable(PHONES[0])["currentNode"] == "WRITTEN_WHILE_AWAY"
    assert session_get(phone=PHONES[0]).current_node == "WRITTEN_WHILE_AWAY"


def test_the_late_recovery_of_a_process_keeps_what_another_process_wrote_on_top_of_its_write(
    write_behind_mode, session_redis, monkeypatch
):
    # Found by the two-process history checker: a process wrote a phone while Redis was away from it, then
    # did not use its session store for a while; another process, Redis back, wrote on top of that write.
    # The first process's recovery (its next Redis use) dropped those newer, unflushed turns.
    first = session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    sessions_flush()  # durable: version 1

    def redis_away(**kwargs):
        raise RedisUnavailable("Redis is unreachable (ConnectionError).")

    # given: this process writes version 2 straight to DynamoDB and remembers it
    with monkeypatch.context() as away:
        away.setattr("sessions_app.services.store.redis_only.redis_session_cas", redis_away)
        away.setattr("sessions_app.services.store.redis_only.redis_session_get", redis_away)
        away.setattr("sessions_app.services.store.cached.redis_session_set_if_newer", redis_away)
        session_save(session=first, expected_version=1)
    redis_breaker.reset()
    remembered = dict(cached._BYPASSED)
    assert remembered == {PHONES[0]: 2}
    # and another process (its own memory: empty) drops the stale copy, reads version 2 and writes version 3
    cached._BYPASSED.clear()
    session_redis.delete(key(SESSION_KEY, phone=PHONES[0]))
    on_top = session_get(phone=PHONES[0])
    assert on_top.version == 2
    on_top.current_node = "WRITTEN_ON_TOP"
    session_save(session=on_top, expected_version=2)  # dirty in Redis, base 2
    # when: this process uses Redis again (its recovery runs)
    cached._BYPASSED.update(remembered)
    found = session_get(phone=PHONES[0])
    # then: the newer turn stays, and goes out with the next flush
    assert (found.version, found.current_node) == (3, "WRITTEN_ON_TOP")
    assert cached._BYPASSED == {}
    sessions_flush()
    assert durable(PHONES[0])["currentNode"] == "WRITTEN_ON_TOP"


def test_the_lock_watcher_failing_to_reach_redis_still_stops_the_writes_and_no_watcher_outlives_a_flush(
    write_behind_mode, session_redis, monkeypatch
):
    # given a watcher whose GETs fail (Redis away from its connection only) while the writers' GETs go through
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    window = 0.2
    monkeypatch.setattr(write_behind, "LOCK_CHECK_SECONDS", window)
    real_holds, real_put = write_behind.redis_lock_holds, write_behind.dynamodb_put_item

    def holds(**kwargs):
        if threading.current_thread().name == "flush-lock-watch":
            raise RedisUnavailable("Redis is unreachable (test)")
        return real_holds(**kwargs)

    started, lost_at = [], []

    def put(**kwargs):
        started.append(time.monotonic())
        if len(started) == 5:
            session_redis.delete(key(FLUSH_LOCK_KEY))
            lost_at.append(time.monotonic())
        time.sleep(0.02)
        return real_put(**kwargs)

    monkeypatch.setattr(write_behind, "redis_lock_holds", holds)
    monkeypatch.setattr(write_behind, "dynamodb_put_item", put)
    # when the lock is lost mid-flush
    assert sessions_flush().status == "lock_lost"
    # then the writers found out themselves within the window, and no watcher is left running
    assert max(started) <= lost_at[0] + window + 0.05
    assert flush_backlog().size == len(PHONES)
    monkeypatch.setattr(write_behind, "dynamodb_put_item", real_put)
    for _ in range(20):
        sessions_flush()
    assert [t for t in threading.enumerate() if t.name == "flush-lock-watch"] == []
