"""Each mode's read and write paths on real Redis and a DynamoDB endpoint, with the same semantics."""

from __future__ import annotations

import pytest

from lizzy import metrics
from lizzy.dynamodb import dynamodb_get_item
from lizzy.redis import json_loads
from lizzy.tables import SESSIONS
from sessions_app.models import StoreMode
from sessions_app.selectors import session_get
from sessions_app.services.sessions import SessionConflict, session_delete, session_new, session_save
from sessions_app.services.store.parallel import shadow_read_stats
from sessions_app.services.store.write_behind import sessions_flush
from tests.fixtures.dynamodb_hooks import record_calls
from tests.sessions_app.factories import SEED_PHONE

ALL_MODES = [m.value for m in StoreMode]


def durable(phone=SEED_PHONE):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def in_redis(client, settings, phone=SEED_PHONE):
    value = client.get(f"{settings.LIZZY_REDIS_PREFIX}session:{phone}")
    return None if value is None else json_loads(value)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_mode_keeps_the_session_contract(mode, dynamodb, session_redis, use_mode):
    # given
    use_mode(mode)
    created = session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    # when / then: create-if-absent, optimistic update, stale write refused, delete
    assert created.version == 1
    with pytest.raises(SessionConflict):
        session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    loaded = session_get(phone=SEED_PHONE)
    assert loaded.customer_id == "CUST123"
    assert loaded.ttl == created.ttl
    loaded.current_node = "SELECT_EQUIPMENT"
    updated = session_save(session=loaded, expected_version=1)
    assert updated.version == 2
    with pytest.raises(SessionConflict):
        session_save(session=loaded, expected_version=1)
    assert session_get(phone=SEED_PHONE).current_node == "SELECT_EQUIPMENT"
    assert session_delete(phone=SEED_PHONE) is True
    assert session_get(phone=SEED_PHONE) is None
    assert session_delete(phone=SEED_PHONE) is False


@pytest.mark.parametrize(
    ("mode", "redis_has_it", "dynamodb_has_it"),
    [
        ("redis_only", True, False),
        ("parallel", True, True),
        ("cutover", True, True),
        ("dynamodb_only", False, True),
        ("cached", True, True),
        ("cached_write_behind", True, False),
    ],
)
def test_where_each_mode_writes(mode, redis_has_it, dynamodb_has_it, dynamodb, session_redis, use_mode, settings):
    use_mode(mode)
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    assert (in_redis(session_redis, settings) is not None) is redis_has_it
    assert (durable() is not None) is dynamodb_has_it


def test_redis_value_is_the_camel_case_json_document_without_ttl(dynamodb, session_redis, use_mode, settings):
    use_mode("redis_only")
    stored = session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    document = in_redis(session_redis, settings)
    assert document == {k: v for k, v in stored.to_document().items() if k != "ttl"}
    name = f"{settings.LIZZY_REDIS_PREFIX}session:{SEED_PHONE}"
    assert 895 <= session_redis.ttl(name) <= 900
    assert key_expires_at(session_redis, name) == stored.ttl
    # a read is one plain GET; the ttl it reports is the key's expiry, derived from lastActivity
    assert session_get(phone=SEED_PHONE).ttl == stored.ttl == key_expires_at(session_redis, name)


def key_expires_at(client, name: str) -> int:
    """The key's expiry as a Unix time in seconds: EXPIRETIME, spelled for Redis 6.2 too (the embedded
    redis-server; EXPIRETIME is 7.0): the server's clock plus PTTL, read atomically, rounded to the second
    (the product sets whole seconds with EXAT)."""
    pipe = client.pipeline(transaction=True)
    pipe.time()
    pipe.pttl(name)
    (seconds, microseconds), remaining_ms = pipe.execute()
    return round((seconds * 1000 + microseconds / 1000 + remaining_ms) / 1000)


def test_cached_hit_makes_no_dynamodb_call(dynamodb, session_redis, use_mode):
    use_mode("cached")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        assert session_get(phone=SEED_PHONE) is not None
    assert calls == []


def test_cached_miss_reads_dynamodb_once_and_fills_redis(dynamodb, session_redis, use_mode, settings):
    use_mode("dynamodb_only")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    use_mode("cached")
    with record_calls() as calls:
        assert session_get(phone=SEED_PHONE).version == 1
        assert session_get(phone=SEED_PHONE).version == 1
    assert calls == [("GetItem", SESSIONS.name)]
    assert in_redis(session_redis, settings)["version"] == 1


def test_dynamodb_turn_is_one_get_and_one_conditional_put(dynamodb, session_redis, use_mode):
    use_mode("dynamodb_only")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        session = session_get(phone=SEED_PHONE)
        session_save(session=session, expected_version=session.version)
    assert [op for op, _ in calls] == ["GetItem", "PutItem"]


def test_cached_write_through_is_one_put_and_no_read(dynamodb, session_redis, use_mode):
    use_mode("cached")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        session = session_get(phone=SEED_PHONE)
        session_save(session=session, expected_version=session.version)
    assert [op for op, _ in calls] == ["PutItem"]


def test_write_behind_turn_makes_no_dynamodb_call_and_the_flush_persists_it(dynamodb, session_redis, use_mode):
    use_mode("cached_write_behind")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        session = session_get(phone=SEED_PHONE)
        session.current_node = "PARTS"
        session_save(session=session, expected_version=session.version)
    assert calls == []
    assert durable() is None
    sessions_flush()
    assert durable()["version"] == 2
    assert durable()["currentNode"] == "PARTS"


def test_stale_hot_copy_is_dropped_after_a_conflict(dynamodb, session_redis, use_mode, settings):
    # given: Redis holds version 1 while DynamoDB moved to 2 (written while Redis was unreachable)
    use_mode("cached")
    first = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    use_mode("dynamodb_only")
    session_save(session=first, expected_version=1)
    use_mode("cached")
    stale = session_get(phone=SEED_PHONE)
    assert stale.version == 1
    # when
    with pytest.raises(SessionConflict):
        session_save(session=stale, expected_version=stale.version)
    # then: the retry reads the durable version
    assert session_get(phone=SEED_PHONE).version == 2


def test_parallel_falls_back_to_dynamodb_on_a_redis_miss_and_counts_it(dynamodb, session_redis, use_mode):
    use_mode("dynamodb_only")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    use_mode("parallel")
    before = metrics.SESSION_FALLBACKS.labels("parallel", "redis_miss")._value.get()
    loaded = session_get(phone=SEED_PHONE)
    assert loaded.version == 1
    assert metrics.SESSION_FALLBACKS.labels("parallel", "redis_miss")._value.get() == before + 1
    # and a write on a session only DynamoDB has keeps optimistic locking and fills Redis
    saved = session_save(session=loaded, expected_version=1)
    assert saved.version == 2
    assert session_get(phone=SEED_PHONE).version == 2


def test_parallel_shadow_reads_count_and_sample_divergences(dynamodb, session_redis, use_mode, settings):
    use_mode("parallel")
    settings.LIZZY_SHADOW_READ_RATE = 1.0
    session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    session_get(phone=SEED_PHONE)
    assert shadow_read_stats()["divergences"] == 0
    # when: the DynamoDB copy drifts
    item = durable()
    item["currentNode"] = "SOMEWHERE_ELSE"
    from lizzy.dynamodb import dynamodb_put_item

    dynamodb_put_item(table=SESSIONS.name, item=item)
    session_get(phone=SEED_PHONE)
    # then
    stats = shadow_read_stats()
    assert stats["divergences"] == 1
    assert stats["samples"][0]["fields"] == ["currentNode"]
    assert SEED_PHONE not in str(stats)


def test_cutover_keeps_redis_current_so_a_rollback_loses_nothing(dynamodb, session_redis, use_mode):
    use_mode("parallel")
    session = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    use_mode("cutover")
    session.current_node = "WRITTEN_IN_CUTOVER"
    session_save(session=session, expected_version=1)
    use_mode("parallel")
    assert session_get(phone=SEED_PHONE).current_node == "WRITTEN_IN_CUTOVER"
    assert shadow_read_stats()["divergences"] == 0


def test_parallel_mirror_never_moves_dynamodb_backwards(dynamodb, session_redis, use_mode, settings):
    use_mode("cutover")
    session = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    session = session_save(session=session, expected_version=1)  # v2 in both
    session_redis.delete(f"{settings.LIZZY_REDIS_PREFIX}session:{SEED_PHONE}")
    use_mode("parallel")
    with pytest.raises(SessionConflict):
        session_save(session=session, expected_version=1)  # stale: DynamoDB is at 2, Redis lost its copy
    assert durable()["version"] == 2


@pytest.mark.integration
def test_cached_mode_over_http_dynamodb(live_dynamodb, session_redis, use_mode):
    use_mode("cached")
    created = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        assert session_get(phone=SEED_PHONE).version == created.version
    assert calls == []
    assert durable()["version"] == 1
