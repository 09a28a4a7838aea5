"""The admin's session actions go through the store of the current mode, so Redis copies follow.

Before this, "expire now" updated DynamoDB directly: in the cached modes the hot tier kept serving the
session (and write-behind flushed it back). Real Redis, moto DynamoDB.
"""

from __future__ import annotations

import time

import pytest

from lizzy.dynamodb import dynamodb_get_item
from lizzy.redis import json_loads
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.ops import session_expire, session_remove, session_reset
from sessions_app.services.sessions import MAIN_MENU, SessionConflict, session_new, session_save
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from tests.sessions_app.factories import SEED_PHONE

CACHED_MODES = ["cached", "cached_write_behind"]


def durable(phone=SEED_PHONE):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def in_redis(client, settings, phone=SEED_PHONE):
    """The live copy Redis holds (a tombstone, a deleted or expired session, is no copy)."""
    value = client.get(f"{settings.LIZZY_REDIS_PREFIX}session:{phone}")
    document = None if value is None else json_loads(value)
    return None if document is None or "tombstone" in document else document


def hot_session(mode, use_mode, *, node="SELECT_EQUIPMENT"):
    """A session at version 2 that the hot tier holds (in write-behind, version 2 is not yet flushed)."""
    use_mode(mode)
    created = session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    if mode == "cached_write_behind":
        sessions_flush()
    created.current_node = node
    created.session_data["problemDescription"] = "Engine won't start"
    return session_save(session=created, expected_version=1)


@pytest.mark.parametrize("mode", CACHED_MODES)
def test_expire_now_removes_the_hot_copy_and_expires_the_durable_item(
    mode, dynamodb, session_redis, use_mode, settings
):
    # given
    hot_session(mode, use_mode)
    assert in_redis(session_redis, settings) is not None
    # when
    session_expire(phone=SEED_PHONE, expected_version=2)
    # then: no process serves it, and the flusher cannot bring it back
    assert in_redis(session_redis, settings) is None
    assert session_get(phone=SEED_PHONE) is None
    sessions_flush()
    assert session_get(phone=SEED_PHONE) is None
    item = durable()
    assert item is not None  # DynamoDB's TTL deletes it later
    assert item["ttl"] <= int(time.time())
    assert flush_backlog().size == 0


@pytest.mark.parametrize("mode", CACHED_MODES)
def test_expire_now_refuses_a_stale_version_and_changes_nothing(mode, dynamodb, session_redis, use_mode, settings):
    hot_session(mode, use_mode)
    with pytest.raises(SessionConflict):
        session_expire(phone=SEED_PHONE, expected_version=1)
    assert session_get(phone=SEED_PHONE).version == 2


def test_write_through_expire_drops_a_stale_hot_copy_on_conflict(dynamodb, session_redis, use_mode, settings):
    # given: the hot tier shows version 1 while DynamoDB already has version 2 (a Redis partition healed)
    use_mode("cached")
    created = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    stale = session_redis.get(f"{settings.LIZZY_REDIS_PREFIX}session:{SEED_PHONE}")
    session_save(session=created, expected_version=1)
    session_redis.set(f"{settings.LIZZY_REDIS_PREFIX}session:{SEED_PHONE}", stale, ex=600)
    assert session_get(phone=SEED_PHONE).version == 1
    # when the operator expires the version they saw
    with pytest.raises(SessionConflict):
        session_expire(phone=SEED_PHONE, expected_version=1)
    # then the reload shows the real version, and expiring that one works
    assert session_get(phone=SEED_PHONE).version == 2
    session_expire(phone=SEED_PHONE, expected_version=2)
    assert session_get(phone=SEED_PHONE) is None


@pytest.mark.parametrize("mode", CACHED_MODES)
def test_reset_updates_the_hot_copy(mode, dynamodb, session_redis, use_mode, settings):
    hot_session(mode, use_mode)
    session_reset(phone=SEED_PHONE, expected_version=2)
    cached = in_redis(session_redis, settings)
    assert (cached["currentNode"], cached["version"]) == (MAIN_MENU, 3)
    assert "problemDescription" not in cached["sessionData"]
    sessions_flush()
    assert durable()["currentNode"] == MAIN_MENU
    assert durable()["customerId"] == "CUST123"


@pytest.mark.parametrize("mode", CACHED_MODES)
def test_delete_removes_both_copies_and_the_dirty_marker(mode, dynamodb, session_redis, use_mode, settings):
    hot_session(mode, use_mode)
    session_remove(phone=SEED_PHONE, expected_version=2)
    assert in_redis(session_redis, settings) is None
    assert session_get(phone=SEED_PHONE) is None
    sessions_flush()
    assert flush_backlog().size == 0
    # DynamoDB keeps a leftover without content (TTL deletes it later) so versions stay monotonic
    item = durable()
    assert item is None or (item["ttl"] <= int(time.time()) and "sessionData" not in item)
    assert session_get(phone=SEED_PHONE) is None


@pytest.mark.parametrize("mode", ["redis_only", "parallel", "cutover", "dynamodb_only"])
def test_expire_now_works_in_the_other_modes(mode, dynamodb, session_redis, use_mode, settings):
    use_mode(mode)
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    session_expire(phone=SEED_PHONE, expected_version=1)
    assert session_get(phone=SEED_PHONE) is None
    assert in_redis(session_redis, settings) is None
    with pytest.raises(SessionConflict):
        session_expire(phone=SEED_PHONE, expected_version=1)
