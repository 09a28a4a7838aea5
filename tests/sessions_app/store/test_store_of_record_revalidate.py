"""Seed 000's phases move the store of record between Redis and DynamoDB; what the history checker found there.

A parallel delete whose DynamoDB mirror failed came back (the Redis tombstone was read as a miss); the rollbacks
cutover → parallel and parallel → redis_only served Redis copies older than DynamoDB, or none at all; entering
parallel from redis_only preferred DynamoDB leftovers of an earlier period by their higher version.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from botocore.exceptions import EndpointConnectionError

import lizzy.redis
from lizzy import metrics
from lizzy.dynamodb import dynamodb_put_item
from lizzy.dynamodb.codec import iso_utc
from lizzy.redis import RedisUnavailable
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.sessions import SessionConflict, session_delete, session_new, session_save
from sessions_app.services.store import cutover, parallel
from sessions_app.services.store.factory import get_session_store, stores_reset
from sessions_app.services.store.redis_only import redis_document
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
    # then Redis's tombstone decides: DynamoDB's copy, still live, does not come back, nor can it be ended again
    assert log_of(SEED_PHONE) is None
    assert not session_delete(phone=SEED_PHONE, expected_version=1)


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


def test_rolling_back_right_after_entering_parallel_keeps_the_lifetime_redis_restarted(
    dynamodb, session_redis, use_mode
):
    # given the same as above: an earlier parallel period left version 3 in DynamoDB, Redis lost the session
    # in redis_only and a new lifetime started at version 1, and entering parallel expired DynamoDB's copy
    use_mode("parallel")
    turns(["old-1", "old-2", "old-3"])
    use_mode("redis_only")
    session_redis.delete(lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE))
    stores_reset()
    time.sleep(1.1)  # lifetimes a second apart at least (lastActivity has whole seconds)
    assert turns(["new-1"]) == 1
    revalidate("redis_only", "parallel")
    use_mode("parallel")
    assert log_of(SEED_PHONE) == ["new-1"]
    # when the store rolls back to redis_only before that session's next turn (shadow reads diverged, say)
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then the acknowledged lifetime is still there: the expiry the revalidation itself wrote into DynamoDB's
    # older copy is no end of it
    assert log_of(SEED_PHONE) == ["new-1"]


def test_the_catch_up_keeps_a_redis_lifetime_started_before_dynamodb_s_older_copy_expired_by_time(
    dynamodb, session_redis, use_mode
):
    # given DynamoDB's copy of an earlier parallel period (version 3, last written 5 minutes ago) that expires
    # by time a moment from now, and Redis, which lost its keys in redis_only since, holding a new lifetime
    use_mode("redis_only")
    stale = {
        "phone": SEED_PHONE,
        "version": 3,
        "lastActivity": iso_utc(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)),
        "ttl": int(time.time()) + 1,
        "sessionData": {"log": ["old-3"]},
    }
    dynamodb_put_item(table=SESSIONS.name, item=stale)
    assert turns(["new-1"]) == 1
    time.sleep(2.1)  # the stale copy's ttl passes: an expired item, ended (by ttl) after Redis's lifetime began
    # when the store rolls back to redis_only from a parallel period
    revalidate("parallel", "redis_only")
    # then the new lifetime stays: it was written after the older copy's last write
    assert log_of(SEED_PHONE) == ["new-1"]


def test_entering_parallel_is_refused_while_redis_cannot_be_reached(dynamodb, session_redis, monkeypatch):
    # given no live DynamoDB copy (nothing to expire) and Redis, the store of record, unreachable
    def away(function, *args, **kwargs):
        raise RedisUnavailable("Redis is unreachable (test)")

    monkeypatch.setattr(lizzy.redis, "redis_call", away)
    # then the change is refused as the docs say: in parallel every read would fall back to DynamoDB, which
    # holds none of redis_only's sessions yet (the legacy copy runs after the change)
    with pytest.raises(ModeChangeRefused, match="cannot be reached"):
        revalidate("redis_only", "parallel")


def test_a_parallel_delete_whose_dynamodb_mirror_failed_stays_deleted_after_the_tombstone_expires(
    dynamodb, session_redis, use_mode, settings
):
    # given a session in parallel, deleted while DynamoDB refused the mirror write (its copy stays live)
    settings.LIZZY_TOMBSTONE_SECONDS = 1  # 60 in production: the same, a minute later
    use_mode("parallel")
    turns(["a"])
    with fault_injection(refuse_dynamodb_writes):
        assert session_delete(phone=SEED_PHONE, expected_version=1)
    # when the tombstone's own lifetime has passed (the session's ttl has not)
    time.sleep(1.5)
    # then the session is still deleted, and the phone may start a new one
    assert log_of(SEED_PHONE) is None
    assert turns(["new"]) > 2


@pytest.mark.parametrize("end", ["delete", "expire"])
def test_rolling_back_to_redis_only_keeps_an_end_that_reached_only_dynamodb_in_parallel(
    dynamodb, session_redis, use_mode, monkeypatch, end
):
    # given a process still in cutover (its mode cache) writing a session: DynamoDB has version 1, and its Redis
    # mirror write is still in flight
    use_mode("cutover")
    mirrors = []
    with monkeypatch.context() as patch:
        patch.setattr(cutover, "redis_session_set_if_newer", lambda **kwargs: mirrors.append(kwargs))
        turns(["a"])
    # when a parallel process reads it (a Redis miss: DynamoDB serves it) and ends it: Redis holds nothing to end,
    # DynamoDB does
    use_mode("parallel")
    assert log_of(SEED_PHONE) == ["a"]
    assert getattr(get_session_store(), end)(SEED_PHONE, expected_version=1)
    # and then the cutover process's mirror write lands in Redis (it loses to the tombstone the end left there)
    (mirror,) = mirrors
    lizzy.redis.redis_session_set_if_newer(**mirror)
    # and the store rolls back to redis_only
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then the acknowledged end holds: the session does not come back
    assert log_of(SEED_PHONE) is None


@pytest.mark.parametrize("leftover", ["expired", "deleted"])
def test_rolling_back_to_redis_only_keeps_a_lifetime_written_in_the_same_second_as_dynamodb_s_older_one(
    dynamodb, session_redis, use_mode, leftover
):
    # given Redis, which lost its keys in redis_only, holding a new lifetime at version 1, and DynamoDB's copy of
    # an earlier lifetime (version 3) last written within that same second: an expired item (entering parallel
    # retires it) or a delete's leftover (dated by its ttl)
    use_mode("redis_only")
    assert turns(["new-1"]) == 1
    same_second = json.loads(session_redis.get(lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE)))[
        "lastActivity"
    ]
    second = int(dt.datetime.fromisoformat(same_second).timestamp())
    if leftover == "expired":
        item = {"phone": SEED_PHONE, "version": 3, "lastActivity": same_second, "ttl": second + 900}
        item["sessionData"] = {"log": ["old-3"]}
    else:
        item = {"phone": SEED_PHONE, "version": 3, "ttl": second}
    dynamodb_put_item(table=SESSIONS.name, item=item)
    revalidate("redis_only", "parallel")
    use_mode("parallel")
    assert log_of(SEED_PHONE) == ["new-1"]
    # when the store rolls back to redis_only (lastActivity has whole seconds: it cannot tell these lifetimes apart)
    revalidate("parallel", "redis_only")
    use_mode("redis_only")
    # then the acknowledged lifetime survives and the older one does not come back
    assert log_of(SEED_PHONE) == ["new-1"]


def session_only_dynamodb_has(use_mode) -> dict:
    """A session written while DynamoDB was the store of record (Redis missed it), then parallel: Redis lacks it,
    parallel serves it from DynamoDB. Returns its Redis document (what a stale fill or mirror would write)."""
    use_mode("dynamodb_only")
    turns(["a"])
    use_mode("parallel")
    assert log_of(SEED_PHONE) == ["a"]
    return redis_document(get_session_store().load(SEED_PHONE))


def stale_fill(document: dict) -> int:
    """A late write of an older copy into Redis (a cutover process's mirror, a read's fill): "set if newer"."""
    expire_at = int(dt.datetime.fromisoformat(document["lastActivity"]).timestamp()) + 900
    return lizzy.redis.redis_session_set_if_newer(phone=SEED_PHONE, document=document, expire_at=expire_at)


@pytest.mark.parametrize("end", ["delete", "expire"])
def test_a_parallel_end_of_a_session_redis_lacks_leaves_a_tombstone_a_stale_fill_cannot_undo(
    dynamodb, session_redis, use_mode, settings, end
):
    # given a session only DynamoDB has, served by parallel
    stale = session_only_dynamodb_has(use_mode)
    # when parallel ends it (DynamoDB decides: Redis holds nothing to end)
    assert getattr(get_session_store(), end)(SEED_PHONE, expected_version=1)
    # then Redis holds a tombstone above it for a session's lifetime, which a late write of the old copy loses to
    name = lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE)
    stone = json.loads(session_redis.get(name))
    assert (stone["version"], stone["tombstone"]) == (2, "deleted" if end == "delete" else "expired")
    assert session_redis.ttl(name) > settings.LIZZY_SESSION_TTL_SECONDS - 10
    assert stale_fill(stale) == 0
    assert log_of(SEED_PHONE) is None
    # and a new lifetime starts above it
    assert turns(["new"]) == 3
    assert log_of(SEED_PHONE) == ["new"]


@pytest.mark.parametrize("landing", ["older", "newer"])
def test_a_parallel_end_s_tombstone_ends_an_older_copy_that_landed_meanwhile_and_keeps_a_newer_one(
    dynamodb, session_redis, use_mode, landing
):
    # given a session only DynamoDB has, served by parallel
    stale = session_only_dynamodb_has(use_mode)
    newer = {**stale, "version": 3, "sessionData": {"log": ["new"]}}  # a new lifetime, above the end's leftover
    landed = []

    def land_after_the_end(operation, params, send):
        answer = send(params)
        if operation in ("PutItem", "UpdateItem") and not landed:
            # between DynamoDB's end and Redis's tombstone: a late copy of the ended session, or a new lifetime
            landed.append(stale_fill(stale if landing == "older" else newer))
        return answer

    # when parallel deletes it and a Redis write lands between the two stores' steps
    with fault_injection(land_after_the_end):
        assert session_delete(phone=SEED_PHONE, expected_version=1)
    assert landed == [1]
    # then the older copy is ended all the same, and the newer lifetime stays
    assert log_of(SEED_PHONE) == (None if landing == "older" else ["new"])


def test_a_parallel_end_of_a_session_redis_lacks_follows_dynamodb_s_version(dynamodb, session_redis, use_mode):
    # given a session only DynamoDB has, at version 1
    session_only_dynamodb_has(use_mode)
    # when parallel is asked to delete a version DynamoDB does not hold
    with pytest.raises(SessionConflict):
        session_delete(phone=SEED_PHONE, expected_version=7)
    # then nothing ended, in either store
    assert log_of(SEED_PHONE) == ["a"]
    assert session_redis.get(lizzy.redis.key(lizzy.redis.SESSION_KEY, phone=SEED_PHONE)) is None


@pytest.mark.parametrize("end", ["delete", "expire"])
def test_a_parallel_end_is_refused_while_redis_cannot_be_reached(dynamodb, session_redis, use_mode, monkeypatch, end):
    # given a session only DynamoDB has, and then Redis, the store of record, unreachable
    session_only_dynamodb_has(use_mode)

    def away(function, *args, **kwargs):
        raise RedisUnavailable("Redis is unreachable (test)")

    with monkeypatch.context() as patch:
        patch.setattr(lizzy.redis, "redis_call", away)
        assert log_of(SEED_PHONE) == ["a"]  # reads fall back to DynamoDB
        # when it is ended: refused (503), so no end can reach DynamoDB alone
        with pytest.raises(RedisUnavailable):
            getattr(get_session_store(), end)(SEED_PHONE, expected_version=1)
    # then the session is as it was
    assert log_of(SEED_PHONE) == ["a"]


def test_a_parallel_end_whose_redis_tombstone_failed_is_acknowledged_and_counted(
    dynamodb, session_redis, use_mode, monkeypatch
):
    # given a session only DynamoDB has, served by parallel
    session_only_dynamodb_has(use_mode)
    before = metrics.SESSION_MIRROR_ERRORS.labels("redis", "redis_unavailable")._value.get()

    def redis_away(**kwargs):
        raise RedisUnavailable("Redis is unreachable (test)")

    # when Redis answers the first call (it holds nothing to end) and not the tombstone write
    monkeypatch.setattr(parallel, "redis_session_tombstone", redis_away)
    assert session_delete(phone=SEED_PHONE, expected_version=1)
    # then DynamoDB's end stands (parallel reads it on a Redis miss) and the missing tombstone is counted
    assert log_of(SEED_PHONE) is None
    assert metrics.SESSION_MIRROR_ERRORS.labels("redis", "redis_unavailable")._value.get() == before + 1
