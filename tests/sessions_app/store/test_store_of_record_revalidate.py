"""Seed 000's phases move the store of record between Redis and DynamoDB; what the history checker found there.

A parallel delete whose DynamoDB mirror failed came back (the Redis tombstone was read as a miss); the rollbacks
cutover → parallel and parallel → redis_only served Redis copies older than DynamoDB, or none at all; entering
parallel from redis_only preferred DynamoDB leftovers of an earlier period by their higher version.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import EndpointConnectionError

import lizzy.redis
from lizzy.dynamodb import dynamodb_put_item
from lizzy.redis import RedisUnavailable
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete, session_new, session_save
from sessions_app.services.store import cutover
from sessions_app.services.store.factory import stores_reset
from sessions_app.services.store_modes import ModeChangeRefused, store_of_record_revalidate
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.sessions_app.factories import SEED_PHONE


def turns(log: list[str], *, expected: int | None = None) -> int:
    """Write ``log`` as the session's turns one by one from ``expected``; returns the last version."""
    version = expected
    for n in range(len(log)):
        current = session_get(phone=SEED_PHONE)
        session = current or session_new(phone=SEED_PHONE)
        session.session_data = {"log": log[: n + 1]}
        version = session_save(session=session, expected_version=current.version if current else None).version
    return version


def log_of(phone: str) -> list[str] | None:
    found = session_get(phone=phone)
    return None if found is None else found.session_data["log"]


def refuse_dynamodb_writes(operation, params, send):
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
    return send(params)


def revalidate(current: str, target: str) -> None:
    store_of_record_revalidate(current=current, target=target, force=False, phase="before")


def test_a_parallel_delete_whose_dynamodb_mirror_failed_stays_deleted(dynamodb, session_redis, use_mode):
    # given a session in parallel (Redis and its DynamoDB mirror)
    use_mode("parallel")
    turns(["a"])
    # when it is deleted while DynamoDB refuses the mirror write
    with fault_injection(refuse_dynamodb_writes):
        assert session_delete(phone=SEED_PHONE, expected_version=1)
    # then Redis's tombstone decides: DynamoDB's copy, still live, does not come back
    assert log_of(SEED_PHONE) is None


def test_rolling_back_from_cutover_keeps_a_delete_the_redis_mirror_missed(
    dynamodb, session_redis, use_mode, monkeypatch
):
    use_mode("cutover")
    version = turns(["a", "b"])

    def redis_away(**kwargs):
        raise RedisUnavailable("Redis is unreachable (test)")

    # given a cutover delete whose Redis tombstone was never written (Redis still holds the live copy)
    with monkeypatch.context() as patch:
        patch.setattr(cutover, "redis_session_tombstone", redis_away)
        assert session_delete(phone=SEED_PHONE, expected_version=version)
    # when the store rolls back to parallel, where Redis is the store of record again
    revalidate("cutover", "parallel")
    use_mode("parallel")
    # then the session stays deleted
    assert log_of(SEED_PHONE) is None


def test_rolling_back_to_redis_only_keeps_the_sessions_only_dynamodb_had(dynamodb, session_redis, use_mode):
    # given a session written while DynamoDB was the store of record and Redis missed the mirror write
    use_mode("dynamodb_only")
    turns(["a", "b", "c"])
    use_mode("parallel")
    assert log_of(SEED_PHONE) == ["a", "b", "c"]  # parallel serves it from DynamoDB on a Redis miss
    # when the store rolls back to redis_only
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then Redis has it
    assert log_of(SEED_PHONE) == ["a", "b", "c"]


def test_entering_parallel_expires_dynamodb_copies_older_than_redis(dynamodb, session_redis, use_mode):
    # given an earlier parallel period that left version 3 in DynamoDB, then redis_only, where Redis lost the
    # session and a new lifetime started at version 1
    use_mode("parallel")
    turns(["old-1", "old-2", "old-3"])
    use_mode("redis_only")
    session_redis.delete(lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE))
    stores_reset()
    assert turns(["new-1"]) == 1
    # when the store enters parallel again
    revalidate("redis_only", "parallel")
    use_mode("parallel")
    # then the shadow read no longer prefers DynamoDB's older lifetime for its higher version
    assert log_of(SEED_PHONE) == ["new-1"]


def test_a_rollback_is_refused_while_dynamodb_cannot_be_read(dynamodb, session_redis, use_mode):
    def unreachable(operation, params, send):
        raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")

    with fault_injection(unreachable), pytest.raises(ModeChangeRefused, match="must catch up.*cannot be reached"):
        revalidate("cutover", "parallel")
    # forced, the change goes ahead (and logs what it could not do)
    with fault_injection(unreachable):
        assert store_of_record_revalidate(current="cutover", target="parallel", force=True, phase="before") == 0


def test_the_catch_up_keeps_a_redis_lifetime_started_after_dynamodb_ended_the_last_one(
    dynamodb, session_redis, use_mode
):
    # given DynamoDB's leftover of a session deleted 10 s ago (version 4), and Redis, which lost its keys
    # since, holding a new lifetime whose mirror write DynamoDB refused
    use_mode("parallel")
    dynamodb_put_item(table=SESSIONS.name, item={"phone": SEED_PHONE, "version": 4, "ttl": int(time.time()) - 10})
    with fault_injection(refuse_dynamodb_writes):
        assert turns(["new-1"]) == 5  # a parallel create starts above DynamoDB's leftover
    # when the store rolls back to redis_only
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then the new lifetime stays: it was written after the end
    assert log_of(SEED_PHONE) == ["new-1"]


def test_the_catch_up_keeps_a_lower_redis_lifetime_started_after_dynamodb_ended_the_last_one(
    dynamodb, session_redis, use_mode
):
    # given the same, where the new lifetime began while Redis alone was the store (redis_only: versions
    # restart at 1 after a Redis loss) and entered parallel with its mirror refused
    use_mode("redis_only")
    dynamodb_put_item(table=SESSIONS.name, item={"phone": SEED_PHONE, "version": 4, "ttl": int(time.time()) - 10})
    assert turns(["new-1"]) == 1
    use_mode("parallel")
    # when the store rolls back to redis_only
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then the new lifetime stays: its version is lower, but it was written after the end
    assert log_of(SEED_PHONE) == ["new-1"]


OTHER_PHONE = "+12065550177"


def refuse_dynamodb_reads(operation, params, send):
    if operation in ("GetItem", "Scan"):
        raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
    return send(params)


def test_entering_cutover_carries_the_parallel_writes_whose_dynamodb_mirror_failed(dynamodb, session_redis, use_mode):
    # given, in parallel, a turn and a delete acknowledged from Redis while DynamoDB refused their mirror writes
    use_mode("parallel")
    turns(["a"])
    session_save(session=session_new(phone=OTHER_PHONE), expected_version=None)
    with fault_injection(refuse_dynamodb_writes):
        current = session_get(phone=SEED_PHONE)
        current.session_data = {"log": ["a", "b"]}
        assert session_save(session=current, expected_version=current.version).version == 2
        assert session_delete(phone=OTHER_PHONE, expected_version=1)
    use_mode("cutover")
    assert log_of(SEED_PHONE) == ["a"]  # what cutover (DynamoDB the store of record) would serve unrevalidated
    assert session_get(phone=OTHER_PHONE) is not None
    use_mode("parallel")

    # when the store moves to cutover
    revalidate("parallel", "cutover")
    use_mode("cutover")

    # then DynamoDB has the acknowledged turn and the delete, and a second pass changes nothing
    assert log_of(SEED_PHONE) == ["a", "b"]
    assert session_get(phone=OTHER_PHONE) is None
    assert store_of_record_revalidate(current="parallel", target="cutover", force=False, phase="before") == 0


def test_entering_cutover_is_refused_while_dynamodb_cannot_be_read(dynamodb, session_redis, use_mode):
    use_mode("parallel")
    turns(["a"])
    with fault_injection(refuse_dynamodb_reads), pytest.raises(ModeChangeRefused, match="DynamoDB must catch up"):
        revalidate("parallel", "cutover")
