"""Issue 13's scenarios 1-9, each as a plain test against real Redis and moto's HTTP DynamoDB endpoint.

Each test is the schedule that lost or resurrected acknowledged data before the fix; the randomized
history checker (test_history_checker.py) covers their interleavings.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import EndpointConnectionError

from lizzy import metrics
from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.errors import ServiceUnavailable
from lizzy.redis import (
    DIRTY_HASH_KEY,
    FLUSH_LOCK_KEY,
    SESSION_KEY,
    RedisUnavailable,
    json_dumps,
    key,
    redis_session_get,
)
from lizzy.tables import SESSIONS
from sessions_app.models import StoreMode
from sessions_app.selectors import session_get
from sessions_app.services.legacy_copy import sessions_migrate_from_redis
from sessions_app.services.ops import session_expire
from sessions_app.services.sessions import (
    DynamoDBSessionStore,
    SessionConflict,
    session_delete,
    session_new,
    session_save,
)
from sessions_app.services.store import bypass, cached, factory, publishing, redis_only, write_behind
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.cached import CachedSessionStore
from sessions_app.services.store.parallel import shadow_read_stats
from sessions_app.services.store.redis_only import RedisSessionStore
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from sessions_app.services.store_modes import store_mode_forget_cache, store_mode_set
from tests.fixtures.dynamodb_hooks import fault_injection

PHONE = "+12065550142"
OTHER = "+12065550143"


def durable(phone=PHONE):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def live_durable(phone=PHONE):
    item = durable(phone)
    return item if item is not None and int(item.get("ttl", 0)) > time.time() else None


def turn(node, phone=PHONE):
    """One acknowledged turn: read, change, conditional save (what the webhook does)."""
    current = session_get(phone=phone)
    session = current or session_new(phone=phone)
    session.current_node = node
    return session_save(session=session, expected_version=current.version if current else None)


def leave_expired_leftover(phone, version):
    """What DynamoDB really keeps after a session expires: the item, past its ttl, for days."""
    item = {"phone": phone, "version": version, "ttl": int(time.time()) - 5, "currentNode": "OLD_LIFETIME"}
    dynamodb_put_item(table=SESSIONS.name, item=item)


class Nested:
    """A fault hook that runs ``action`` once, in the middle of the first matching DynamoDB call."""

    def __init__(self, operation, action, *, after=False, when=lambda params: True):
        self.operation, self.action, self.after, self.when = operation, action, after, when
        self.done = False

    def __call__(self, operation, params, send):
        if self.done or operation != self.operation or not self.when(params):
            return send(params)
        self.done = True
        if self.after:
            response = send(params)
            self.action()
            return response
        self.action()
        return send(params)


@pytest.fixture
def stores(live_dynamodb, session_redis, use_mode):
    return use_mode


# --- 1. Versions across lifetimes ------------------------------------------------------------------


def test_1_write_behind_a_returning_customer_is_not_called_stale_against_the_expired_leftover(stores):
    stores("cached_write_behind")
    leave_expired_leftover(PHONE, 9)
    write_behind.write_behind_fence_raise()  # an hour of "fence up" after one Redis error
    first = turn("A")
    assert first.version == 10  # the new lifetime starts above the leftover
    for node in ("B", "C", "D"):
        turn(node)
        sessions_flush()
        assert session_get(phone=PHONE).current_node == node  # the hot copy is never dropped as stale
    assert live_durable()["currentNode"] == "D"
    assert flush_backlog().size == 0


@pytest.mark.parametrize("mode", ["parallel"])
def test_1_parallel_mirrors_the_returning_customer_over_the_expired_leftover(stores, settings, mode):
    stores(mode)
    settings.LIZZY_SHADOW_READ_RATE = 1.0
    leave_expired_leftover(PHONE, 9)
    created = turn("A")
    assert created.version == 10  # Redis knows nothing of the leftover; the create asked DynamoDB
    assert live_durable()["currentNode"] == "A"  # the mirror wrote it: an expired item is no session
    turn("B")
    assert session_get(phone=PHONE).current_node == "B"
    assert shadow_read_stats()["divergences"] == 0


def test_1_parallel_refuses_a_create_over_a_live_session_redis_lost(stores, session_redis):
    stores("parallel")
    turn("A")
    turn("B")  # version 2, in Redis and mirrored
    session_redis.delete(key(SESSION_KEY, phone=PHONE))  # Redis lost it (a restart without persistence)
    assert session_get(phone=PHONE).current_node == "B"  # parallel reads DynamoDB on a Redis miss
    with pytest.raises(SessionConflict):
        session_save(session=session_new(phone=PHONE), expected_version=None)  # an API create
    after = turn("C")  # the webhook continues the session DynamoDB served
    assert (after.version, live_durable()["version"]) == (3, 3)


def test_1_parallel_refuses_a_create_when_dynamodb_cannot_say(stores):
    stores("parallel")
    leave_expired_leftover(PHONE, 9)

    def unreachable(operation, params, send):
        raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")

    with fault_injection(unreachable), pytest.raises(ServiceUnavailable):
        # An API create (no read first): whether a live session exists is unknown, as for a read on a miss.
        session_save(session=session_new(phone=PHONE), expected_version=None)
    assert redis_session_get(phone=PHONE) is None  # nothing acknowledged, nothing half-written
    assert turn("A").version == 10  # once DynamoDB answers, the create starts above the leftover


@pytest.mark.parametrize("mode", ["redis_only", "parallel"])
def test_1_a_create_after_a_delete_starts_above_the_tombstone(stores, mode):
    stores(mode)
    for node in ("A", "B", "C"):
        turn(node)  # versions 1..3
    assert session_delete(phone=PHONE, expected_version=3)
    assert turn("NEW").version == 5  # above the tombstone (version 4), never 1 again


def test_1_a_create_racing_a_delete_is_stamped_above_the_new_tombstone(stores):
    stores("redis_only")
    for node in ("A", "B"):
        turn(node)
    session_delete(phone=PHONE, expected_version=2)  # tombstone at version 3
    # A create that read the phone before the delete (it saw no floor) is stamped above the tombstone anyway.
    created = RedisSessionStore().save(session_new(phone=PHONE), expected_version=None, version_floor=0)
    assert created.version == 4
    assert redis_session_get(phone=PHONE)["version"] == 4


def test_1_the_legacy_copy_replaces_an_expired_leftover(stores, session_redis, settings):
    leave_expired_leftover(PHONE, 9)
    document = {"phone": PHONE, "version": 1, "currentNode": "LEGACY", "cachedData": {}, "sessionData": {}}
    session_redis.set(key(SESSION_KEY, phone=PHONE), json_dumps(document), ex=600)
    result = sessions_migrate_from_redis(restart=True)
    assert (result.copied, result.skipped_newer) == (1, 0)
    assert live_durable()["currentNode"] == "LEGACY"


# --- 2. A write-through conflict never drops unflushed turns ----------------------------------------


def test_2_a_write_through_conflict_keeps_a_dirty_copy(stores):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()  # durable: version 1
    dirty = turn("UNFLUSHED")  # version 2, only in Redis
    # a process still in `cached` (processes disagree on the mode for a few seconds) writes through
    through = CachedSessionStore(DynamoDBSessionStore())
    with pytest.raises(SessionConflict):
        through.save(dirty, expected_version=2)  # DynamoDB has version 1
    assert session_get(phone=PHONE).current_node == "UNFLUSHED"
    sessions_flush()
    assert live_durable()["currentNode"] == "UNFLUSHED"


def test_2_a_redis_timeout_on_a_write_behind_save_keeps_the_unflushed_turns(stores, monkeypatch):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()
    current = turn("UNFLUSHED")  # version 2, dirty

    def timeout(**kwargs):
        raise RedisUnavailable("Redis is unreachable (TimeoutError).")

    with monkeypatch.context() as away:
        away.setattr(redis_only, "redis_session_cas", timeout)
        with pytest.raises(SessionConflict):
            session_save(session=current, expected_version=2)  # written through: DynamoDB has 1
    redis_breaker.reset()
    assert session_get(phone=PHONE).current_node == "UNFLUSHED"
    sessions_flush()
    assert live_durable()["currentNode"] == "UNFLUSHED"


# --- 3. Mode changes revalidate the hot tier --------------------------------------------------------


@pytest.fixture
def db_mode(settings, db, live_dynamodb, session_redis):
    settings.LIZZY_SESSION_STORE_MODE = None
    settings.LIZZY_MODE_CACHE_SECONDS = 0.05
    settings.LIZZY_SESSION_STORE_DEFAULT_MODE = "cached"
    store_mode_forget_cache()
    yield
    store_mode_forget_cache()


def test_3_cached_to_dynamodb_only_and_back_serves_no_old_version_nor_a_deleted_session(db_mode):
    turn("A")
    turn("A", phone=OTHER)
    assert session_get(phone=PHONE).current_node == "A"  # hot
    store_mode_set(mode=StoreMode.DYNAMODB_ONLY, actor="test", reason="drop the hot tier")
    turn("B")
    assert session_delete(phone=OTHER) is True
    store_mode_set(mode=StoreMode.CACHED, actor="test")
    assert session_get(phone=PHONE).current_node == "B"
    assert session_get(phone=OTHER) is None
    # one step further: the flush cannot move DynamoDB backwards
    store_mode_set(mode=StoreMode.CACHED_WRITE_BEHIND, actor="test")
    turn("C")
    sessions_flush()
    assert live_durable()["currentNode"] == "C"
    assert live_durable(OTHER) is None


# --- 4. A delete or expire during a flush stays ------------------------------------------------------


@pytest.mark.parametrize("ending", ["delete", "expire"])
def test_4_a_delete_or_expire_during_the_flush_is_not_undone(stores, ending):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()
    current = turn("B")  # dirty version 2

    def end():
        if ending == "delete":
            assert session_delete(phone=PHONE, expected_version=current.version) is True
        else:
            session_expire(phone=PHONE, expected_version=current.version)

    with fault_injection(Nested("PutItem", end)):  # the flush has read version 2 and is about to write it
        sessions_flush()
    assert session_get(phone=PHONE) is None
    sessions_flush()
    assert session_get(phone=PHONE) is None
    assert live_durable() is None
    assert flush_backlog().size == 0


# --- 5. The flush lock is renewed and fenced ---------------------------------------------------------


def test_5_a_flush_that_lost_its_lock_cannot_write_its_older_snapshot_last(stores, session_redis, settings):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()
    turn("B")  # version 2, dirty: the slow flush's snapshot

    def meanwhile():
        # the slow flush's lock expires (throttling), a newer turn lands and the next flush writes it
        session_redis.delete(key(FLUSH_LOCK_KEY))
        turn("C")
        assert sessions_flush().written == 1

    with fault_injection(Nested("PutItem", meanwhile)):
        slow = sessions_flush()
    assert slow.status == "lock_lost"
    assert live_durable()["currentNode"] == "C"
    assert session_get(phone=PHONE).current_node == "C"
    assert flush_backlog().size == 0


def test_5_the_flusher_renews_its_lock_before_each_page(stores, session_redis, settings, monkeypatch):
    stores("cached_write_behind")
    # 20 s, halved at every page: a page on a loaded machine (two pages in flight, a second test worker) takes
    # seconds; only a renewal keeps the lock past the third page, whatever the speed
    settings.LIZZY_FLUSH_LOCK_SECONDS = 20
    redis_store = RedisSessionStore()
    for n in range(150):
        redis_store.save(session_new(phone=f"+1206551{n:04d}"), expected_version=None, mark_dirty=True)
    dirty = sorted(session_redis.hgetall(key(DIRTY_HASH_KEY)).items())

    def page(*, cursor, count):  # HSCAN pages as a big hash would (a small one comes back in one reply)
        chunk = dict(dirty[cursor : cursor + 60])
        return (0 if cursor + 60 >= len(dirty) else cursor + 60), chunk

    monkeypatch.setattr(write_behind, "redis_dirty_page", page)
    ttls = []
    real = write_behind.redis_dirty_snapshot

    def snapshot(**kwargs):
        ttls.append(session_redis.pttl(key(FLUSH_LOCK_KEY)))
        session_redis.pexpire(key(FLUSH_LOCK_KEY), 10_000)  # as if half the lock time had gone
        return real(**kwargs)

    monkeypatch.setattr(write_behind, "redis_dirty_snapshot", snapshot)
    result = sessions_flush()
    assert (result.status, result.written) == ("flushed", 150)
    assert len(ttls) >= 2
    assert min(ttls) > 15_000  # renewed to the full period before every page


# --- 6. Cache-aside fill race -------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["delete", "expire"])
def test_6_a_fill_from_a_read_made_before_a_delete_or_expire_does_not_bring_it_back(stores, session_redis, ending):
    stores("cached")
    stored = turn("A")
    session_redis.delete(key(SESSION_KEY, phone=PHONE))  # evicted: the next read goes to DynamoDB

    def end():
        if ending == "delete":
            assert session_delete(phone=PHONE, expected_version=stored.version) is True
        else:
            session_expire(phone=PHONE, expected_version=stored.version)

    with fault_injection(Nested("GetItem", end, after=True)):
        assert session_get(phone=PHONE).version == stored.version  # the read got the old copy...
    assert session_get(phone=PHONE) is None  # ...but did not fill it back
    assert redis_session_get(phone=PHONE)["tombstone"] in ("deleted", "expired")


# --- 7. A write-through delete is conditional ---------------------------------------------------------


def test_7_a_write_through_delete_of_a_stale_version_removes_nothing(stores, session_redis):
    stores("cached")
    first = turn("A")
    stale = session_redis.get(key(SESSION_KEY, phone=PHONE))
    turn("NEWER")  # version 2 in DynamoDB
    session_redis.set(key(SESSION_KEY, phone=PHONE), stale, ex=600)  # the hot tier still shows version 1
    with pytest.raises(SessionConflict):
        session_delete(phone=PHONE, expected_version=first.version)
    assert live_durable()["currentNode"] == "NEWER"
    assert session_get(phone=PHONE).current_node == "NEWER"


# --- 8. Expired sessions are invisible to conditional writes ------------------------------------------


@pytest.mark.parametrize("mode", ["dynamodb_only", "cached", "cutover"])
def test_8_update_delete_and_expire_of_an_expired_session_are_conflicts(stores, mode, monkeypatch):
    stores(mode)
    stored = turn("A")
    item = durable()
    item["ttl"] = int(time.time()) - 1
    dynamodb_put_item(table=SESSIONS.name, item=item)  # expired, still in the table
    published = []
    monkeypatch.setattr(publishing, "_publish", lambda kind, session, phone: published.append(kind))
    factory.stores_reset()
    if mode != "dynamodb_only":
        RedisSessionStore().delete(PHONE)  # Redis's copy expired with the key
    with pytest.raises(SessionConflict):
        session_delete(phone=PHONE, expected_version=stored.version)
    with pytest.raises(SessionConflict):
        session_save(session=stored, expected_version=stored.version)
    with pytest.raises(SessionConflict):
        session_expire(phone=PHONE, expected_version=stored.version)
    assert published == []
    assert session_get(phone=PHONE) is None


# --- 9. Turns made while the breaker was open survive Redis's return ----------------------------------


@pytest.mark.parametrize("fork_turns", [1, 4])
def test_9_breaker_open_turns_are_not_discarded_when_redis_returns(stores, monkeypatch, fork_turns):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()  # durable: version 1
    for _ in range(fork_turns):
        turn("REDIS_FORK")  # dirty, never flushed: the unflushed window when Redis goes away
    before = metrics.SESSION_FORKS.labels("recovery")._value.get()

    def away(*args, **kwargs):
        raise RedisUnavailable("Redis is unreachable (ConnectionError).")

    with monkeypatch.context() as partition:
        for module, name in (
            (redis_only, "redis_session_get"),
            (redis_only, "redis_session_cas"),
            (cached, "redis_session_set_if_newer"),
            (bypass, "redis_session_drop_older"),
        ):
            partition.setattr(module, name, away)
        assert session_get(phone=PHONE).version == 1  # the last flushed version
        acknowledged = [turn("WHILE_AWAY_1"), turn("WHILE_AWAY_2")]
    redis_breaker.reset()  # Redis is back
    assert acknowledged[-1].version == 3
    assert session_get(phone=PHONE).current_node == "WHILE_AWAY_2"
    sessions_flush()
    assert live_durable()["currentNode"] == "WHILE_AWAY_2"
    assert session_get(phone=PHONE).current_node == "WHILE_AWAY_2"
    assert metrics.SESSION_FORKS.labels("recovery")._value.get() == before + 1  # the fork is counted


def test_9_another_process_s_older_fork_is_dropped_by_the_flush_not_written(stores, session_redis):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()
    for _ in range(4):
        turn("REDIS_FORK")  # dirty version 5
    # another process wrote through while its breaker was open (version 2, from the flushed version 1)
    DynamoDBSessionStore().save(session_get(phone=PHONE) and _durable_session(), expected_version=1)
    result = sessions_flush()
    assert result.stale_skipped == 1
    assert live_durable()["version"] == 2  # not overwritten by the higher-numbered older fork
    assert session_get(phone=PHONE).version == 2


def _durable_session():
    session = DynamoDBSessionStore().load(PHONE)
    session.current_node = "WRITTEN_WHILE_AWAY"
    return session
