"""A cached (or write-behind, written through) end is two steps: DynamoDB retires the session, then Redis gets a
tombstone. A lifetime another process starts between the two (stamped above DynamoDB's leftover) is not the
ended session and must stay, while an older unflushed write-behind lineage (its base below the leftover) is
still ended (test_cached_end_over_write_behind_copy.py). Found by the one-process soak, seed 100 at 400 steps on
56b7067: a write-behind expire written through to DynamoDB, a turn nested in that call creating the next
lifetime in Redis, then the expire's tombstone ending it (1 acknowledged turn lost)."""

from __future__ import annotations

import pytest

import lizzy.redis
from sessions_app.selectors import session_get
from sessions_app.services.sessions import DynamoDBSessionStore, session_delete, session_new
from sessions_app.services.store.factory import store_for_mode
from sessions_app.services.store.write_behind import sessions_flush
from tests.fixtures.dynamodb_hooks import record_calls
from tests.sessions_app.factories import SEED_PHONE


@pytest.mark.parametrize("other", ["cached_write_behind", "cached"])
def test_a_lifetime_started_between_a_cached_ends_two_steps_stays(
    dynamodb, session_redis, use_mode, monkeypatch, other
):
    # given a session in cached, its Redis copy gone (evicted, say): DynamoDB holds version 1
    use_mode("cached")
    first = session_new(phone=SEED_PHONE)
    first.session_data = {"log": ["old"]}
    store_for_mode("cached").save(first, expected_version=None)
    lizzy.redis.redis_delete(name=lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE))
    retire = DynamoDBSessionStore.retire
    started = []

    def retire_then_another_process_starts_a_lifetime(self, phone, **kwargs):
        leftover = retire(self, phone, **kwargs)
        if not started:  # a process in `other` mode: the customer texts again at once
            fresh = session_new(phone=phone)
            fresh.session_data = {"log": ["new"]}
            started.append(store_for_mode(other).save(fresh, expected_version=None).version)
        return leftover

    monkeypatch.setattr(DynamoDBSessionStore, "retire", retire_then_another_process_starts_a_lifetime)
    # when a process in cached deletes the session
    assert session_delete(phone=SEED_PHONE)
    monkeypatch.undo()
    # then the lifetime started after the delete is what every read serves, before and after a flush
    for mode in ("cached", "cached_write_behind", "cached"):
        use_mode(mode)
        found = session_get(phone=SEED_PHONE)
        assert found is not None, mode
        assert found.session_data == {"log": ["new"]}
        sessions_flush()
    assert found.version == started[0]


def test_a_write_behind_end_of_a_session_ended_in_redis_is_no_end_and_leaves_dynamodb_alone(
    dynamodb, session_redis, use_mode
):
    """Soak seed 100 at 400 steps on 9512be8: an expire after an unflushed write-behind delete was answered "ended"
    by DynamoDB's stale live copy (acknowledged, an end of nothing), and its Redis step then ended the lifetime a
    turn had started meanwhile."""
    use_mode("cached_write_behind")
    session = session_new(phone=SEED_PHONE)
    session.session_data = {"log": ["a"]}
    store = store_for_mode("cached_write_behind")
    store.save(session, expected_version=None)
    sessions_flush()  # DynamoDB holds it
    assert session_delete(phone=SEED_PHONE)  # a dirty tombstone, not flushed yet
    with record_calls() as calls:
        assert store.expire(SEED_PHONE) is False
    assert calls == []
    fresh = session_new(phone=SEED_PHONE)
    fresh.session_data = {"log": ["new"]}
    started = store.save(fresh, expected_version=None)
    sessions_flush()
    for mode in ("cached_write_behind", "cached"):
        use_mode(mode)
        found = session_get(phone=SEED_PHONE)
        assert found is not None, mode
        assert (found.version, found.session_data) == (started.version, {"log": ["new"]})
