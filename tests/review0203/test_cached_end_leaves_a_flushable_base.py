"""Review of 9512be8 and 289a7ad (issue 13): an end by a process in ``cached`` (DynamoDB, the store of record, then
a Redis tombstone with its leftover as the floor) over a phone whose write-behind lineage is still unflushed (a
process in ``cached_write_behind``, as while the processes follow a mode change). The tombstone kept that
lineage's dirty mark and its base (the DynamoDB version the lineage descends from, below the leftover the end just
wrote): the next lifetime created on it in write-behind inherited the base, and the flush, finding DynamoDB at the
leftover instead, dropped it as a fork. An acknowledged create lost with no Redis error and nothing concurrent."""

from __future__ import annotations

import pytest

from lizzy.redis import ERR_UNAVAILABLE, RedisUnavailable
from sessions_app.selectors import session_get
from sessions_app.services.sessions import DynamoDBSessionStore, session_delete, session_new, session_save
from sessions_app.services.store import cached, write_behind
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.factory import store_for_mode
from sessions_app.services.store.write_behind import sessions_flush
from tests.sessions_app.factories import SEED_PHONE


def turn(entry: str) -> int:
    current = session_get(phone=SEED_PHONE)
    session = current or session_new(phone=SEED_PHONE)
    session.session_data = {"log": [*(current.session_data["log"] if current else []), entry]}
    return session_save(session=session, expected_version=current.version if current else None).version


def assert_served_everywhere(version: int, log: list[str], use_mode) -> None:
    for mode in ("cached_write_behind", "cached"):
        use_mode(mode)
        found = session_get(phone=SEED_PHONE)
        assert found is not None, mode
        assert (found.version, found.session_data) == (version, {"log": log}), mode


@pytest.mark.parametrize("unflushed", [1, 2])  # the lineage at the leftover's version, or above it
def test_a_lifetime_created_after_a_cached_end_of_an_unflushed_lineage_survives_the_flush(
    dynamodb, session_redis, use_mode, unflushed
):
    # given a session in DynamoDB at version 1, and unflushed write-behind turns on it in Redis
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    for n in range(unflushed):
        turn(f"b{n}")
    # and a process in cached ending it (acknowledged)
    use_mode("cached")
    assert session_delete(phone=SEED_PHONE)
    # when the customer texts again, in write-behind, and the flusher runs
    use_mode("cached_write_behind")
    assert session_get(phone=SEED_PHONE) is None
    created = turn("new")
    sessions_flush()
    # then the new lifetime is what every read serves
    assert_served_everywhere(created, ["new"], use_mode)


def test_a_cached_end_of_a_session_deleted_in_write_behind_is_no_end(dynamodb, session_redis, use_mode):
    # given a session flushed at version 1, then deleted in write-behind (a dirty tombstone, not flushed yet)
    use_mode("cached_write_behind")
    assert turn("a") == 1
    sessions_flush()
    assert session_delete(phone=SEED_PHONE)
    # when a process in cached deletes it again (every read there says there is no session)
    use_mode("cached")
    assert session_get(phone=SEED_PHONE) is None
    # then that is an end of nothing: not acknowledged (404), as write-behind answers since 289a7ad
    assert session_delete(phone=SEED_PHONE) is False


def test_a_lifetime_created_after_a_cached_end_over_an_unflushed_delete_survives_the_flush(
    dynamodb, session_redis, use_mode
):
    # given a session flushed at version 1, deleted in write-behind (not flushed), deleted again from cached
    use_mode("cached_write_behind")
    assert turn("a") == 1
    sessions_flush()
    assert session_delete(phone=SEED_PHONE)
    use_mode("cached")
    session_delete(phone=SEED_PHONE)
    # when the customer texts again, in write-behind, and the flusher runs
    use_mode("cached_write_behind")
    created = turn("new")
    sessions_flush()
    # then the new lifetime is what every read serves
    assert_served_everywhere(created, ["new"], use_mode)


def test_a_lifetime_created_over_an_unflushed_delete_between_a_cached_ends_two_steps_stays(
    dynamodb, session_redis, use_mode, monkeypatch
):
    """9512be8's claim is that a dirty lineage whose base is below the leftover holds turns the end ended. A create
    over an unflushed write-behind delete keeps that delete's base (below the leftover) and is a new lifetime: the
    cached end, itself an end of nothing (the session was deleted already), then ended it between its two steps."""
    # given a session flushed at version 1, then deleted in write-behind (a dirty tombstone, not flushed yet)
    use_mode("cached_write_behind")
    assert turn("a") == 1
    sessions_flush()
    assert session_delete(phone=SEED_PHONE)
    retire = DynamoDBSessionStore.retire
    started = []

    def retire_then_the_customer_texts_again(self, phone, **kwargs):
        leftover = retire(self, phone, **kwargs)
        if not started:  # a process in cached_write_behind: a create over the unflushed delete's tombstone
            fresh = session_new(phone=phone)
            fresh.session_data = {"log": ["new"]}
            started.append(store_for_mode("cached_write_behind").save(fresh, expected_version=None).version)
        return leftover

    monkeypatch.setattr(DynamoDBSessionStore, "retire", retire_then_the_customer_texts_again)
    # when a process in cached deletes the session (every read there says there is none): no end
    use_mode("cached")
    assert session_delete(phone=SEED_PHONE) is False
    monkeypatch.undo()
    if not started:  # DynamoDB was not asked: the customer texts again right after the end
        fresh = session_new(phone=SEED_PHONE)
        fresh.session_data = {"log": ["new"]}
        started.append(store_for_mode("cached_write_behind").save(fresh, expected_version=None).version)
    # then the new lifetime is what every read serves, before and after a flush
    assert_served_everywhere(started[0], ["new"], use_mode)
    sessions_flush()
    assert_served_everywhere(started[0], ["new"], use_mode)


def test_a_lifetime_created_after_a_cached_end_that_lands_inside_a_flush_survives_the_next_flush(
    dynamodb, session_redis, use_mode, monkeypatch
):
    """The flush wrote the unflushed turn to DynamoDB, and a cached end lands before the flush's bookkeeping (its
    tombstone over the still-marked lineage): the bookkeeping must leave a tombstone the next lifetime can build on."""
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    assert turn("b") == 2
    flushed = write_behind.redis_dirty_flushed
    ended = []

    def end_then_flushed(**kwargs):
        if not ended:  # a process in cached ends the session between the flush's write and its bookkeeping
            use_mode("cached")
            ended.append(session_delete(phone=SEED_PHONE))
            use_mode("cached_write_behind")
        return flushed(**kwargs)

    monkeypatch.setattr(write_behind, "redis_dirty_flushed", end_then_flushed)
    sessions_flush()
    monkeypatch.undo()
    assert ended == [True]
    assert session_get(phone=SEED_PHONE) is None
    created = turn("new")
    sessions_flush()
    assert_served_everywhere(created, ["new"], use_mode)


def test_a_write_behind_end_over_a_flushed_tombstone_ends_the_lifetime_dynamodb_got_without_redis(
    dynamodb, session_redis, use_mode, monkeypatch
):
    """289a7ad answers False for any tombstone in Redis. A flushed (clean) one says only that DynamoDB took that
    end: a lifetime a process wrote through to DynamoDB since, while Redis was away from it (registered in the
    bypass registry, not yet applied), is live, and an end of it must end it, as ``cached`` does."""
    use_mode("cached_write_behind")
    assert turn("a") == 1
    sessions_flush()
    store = store_for_mode("cached_write_behind")
    assert store.delete(SEED_PHONE)
    sessions_flush()  # Redis: a clean tombstone at 2; DynamoDB: the leftover at 2

    def away(**kwargs):
        raise RedisUnavailable(ERR_UNAVAILABLE.format(reason="ConnectionError"))

    # a process that Redis is away from creates the next lifetime: written through to DynamoDB, registered
    monkeypatch.setattr(cached, "redis_session_set_if_newer", away)
    fresh = session_new(phone=SEED_PHONE)
    fresh.session_data = {"log": ["new"]}
    written = store_for_mode("cached").inner.save(fresh, expected_version=None)
    monkeypatch.undo()
    cached.bypassed_forget()  # another process, which saw no Redis error
    redis_breaker.reset()
    # when that process ends the session, then the lifetime is ended (acknowledged) and stays ended
    assert store.expire(SEED_PHONE) is True
    assert DynamoDBSessionStore().load(SEED_PHONE) is None
    sessions_flush()
    for mode in ("cached_write_behind", "cached"):
        use_mode(mode)
        assert session_get(phone=SEED_PHONE) is None, (mode, written.version)
