"""Redis killed (a real redis-server started by the test) and DynamoDB unreachable, in each mode.

The loss figures these tests assert are the ones docs/SESSION_STORE.md states.
"""

from __future__ import annotations

import pytest

from lizzy import metrics
from lizzy.dynamodb import DynamoDBUnavailable, reset_client
from lizzy.redis import RedisUnavailable, reset_redis
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.breaker import CircuitBreaker, redis_breaker
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from tests.fixtures.services import free_port

PHONES = [f"+1206555{n:04d}" for n in range(40)]


def write_all(phones, node="A"):
    """Save a turn for every phone; returns the acknowledged (phone -> version) writes."""
    acknowledged = {}
    for phone in phones:
        current = session_get(phone=phone)
        session = current or session_new(phone=phone)
        session.current_node = node
        stored = session_save(session=session, expected_version=current.version if current else None)
        acknowledged[phone] = stored.version
    return acknowledged


def count_lost(acknowledged):
    lost = 0
    for phone, version in acknowledged.items():
        found = session_get(phone=phone)
        if found is None or found.version < version:
            lost += 1
    return lost


def restart(own_redis):
    own_redis.kill()
    own_redis.start()
    reset_redis()
    redis_breaker.reset()


@pytest.mark.parametrize("mode", ["parallel", "cutover", "dynamodb_only", "cached"])
def test_write_through_modes_lose_no_acknowledged_write_when_redis_dies(mode, dynamodb, own_redis, use_mode):
    use_mode(mode)
    acknowledged = write_all(PHONES)
    acknowledged.update(write_all(PHONES[:20], node="B"))
    restart(own_redis)  # every key in Redis is gone
    assert count_lost(acknowledged) == 0


def test_write_behind_loses_at_most_the_writes_since_the_last_flush(dynamodb, own_redis, use_mode):
    use_mode("cached_write_behind")
    flushed = write_all(PHONES)
    assert sessions_flush().written == len(PHONES)
    unflushed = write_all(PHONES[:15], node="B")  # acknowledged, not yet flushed
    restart(own_redis)
    acknowledged = {**flushed, **unflushed}
    lost = count_lost(acknowledged)
    assert lost == len(unflushed) == 15
    # and what survives is exactly the last flushed version
    assert all(session_get(phone=phone).version == flushed[phone] for phone in PHONES)


def test_redis_only_loses_everything_when_a_diskless_redis_dies(dynamodb, own_redis, use_mode):
    use_mode("redis_only")
    acknowledged = write_all(PHONES[:10])
    restart(own_redis)
    assert count_lost(acknowledged) == 10


@pytest.mark.parametrize("mode", ["cached", "cached_write_behind"])
def test_cached_modes_keep_serving_while_redis_is_down(mode, dynamodb, own_redis, use_mode):
    use_mode(mode)
    write_all(PHONES[:5])
    sessions_flush()
    own_redis.kill()
    # when: reads and writes continue (write-behind degrades to write-through)
    degraded_before = metrics.SESSION_WRITE_THROUGH_DEGRADED._value.get()
    acknowledged = write_all(PHONES[:5], node="DURING_OUTAGE")
    assert all(session_get(phone=p).current_node == "DURING_OUTAGE" for p in PHONES[:5])
    if mode == "cached_write_behind":
        assert metrics.SESSION_WRITE_THROUGH_DEGRADED._value.get() > degraded_before
    assert redis_breaker.state == CircuitBreaker.OPEN
    # then: Redis comes back empty; nothing acknowledged is lost
    own_redis.start()
    reset_redis()
    redis_breaker.reset()
    assert count_lost(acknowledged) == 0


def test_the_breaker_opens_after_n_errors_and_half_opens_after_t_seconds(dynamodb, own_redis, use_mode, settings):
    use_mode("cached")
    settings.LIZZY_BREAKER_THRESHOLD = 3
    settings.LIZZY_BREAKER_RESET_SECONDS = 10
    now = [1000.0]
    redis_breaker.clock = lambda: now[0]
    try:
        write_all(PHONES[:1])
        own_redis.kill()
        # three failing Redis calls open it
        session_get(phone=PHONES[0])  # GET fails (1); the DynamoDB read answers, no fill attempted
        session_get(phone=PHONES[0])  # (2)
        assert redis_breaker.state == CircuitBreaker.CLOSED
        session_get(phone=PHONES[0])  # (3)
        assert redis_breaker.state == CircuitBreaker.OPEN
        fallbacks = metrics.SESSION_FALLBACKS.labels("cached", "breaker_open")._value.get()
        session_get(phone=PHONES[0])  # no Redis call at all while open
        assert metrics.SESSION_FALLBACKS.labels("cached", "breaker_open")._value.get() == fallbacks + 1
        # after T seconds one trial call is let through; it fails, so it opens again
        now[0] += 10
        assert redis_breaker.state == CircuitBreaker.HALF_OPEN
        session_get(phone=PHONES[0])
        assert redis_breaker.state == CircuitBreaker.OPEN
        # Redis is back: the next trial closes it and the hot tier fills again
        own_redis.start()
        reset_redis()
        now[0] += 10
        session_get(phone=PHONES[0])
        assert redis_breaker.state == CircuitBreaker.CLOSED
        assert own_redis.client().exists(f"lizzy:session:{PHONES[0]}") == 1
    finally:
        redis_breaker.clock = __import__("time").monotonic


def test_parallel_reads_fall_back_but_writes_fail_while_redis_is_down(dynamodb, own_redis, use_mode):
    use_mode("parallel")
    write_all(PHONES[:1])
    own_redis.kill()
    session = session_get(phone=PHONES[0])
    assert session.version == 1
    with pytest.raises(RedisUnavailable):
        session_save(session=session, expected_version=1)


def test_cutover_keeps_working_while_redis_is_down_and_counts_mirror_errors(dynamodb, own_redis, use_mode):
    use_mode("cutover")
    write_all(PHONES[:1])
    own_redis.kill()
    before = metrics.SESSION_MIRROR_ERRORS.labels("redis", "redis_unavailable")._value.get()
    acknowledged = write_all(PHONES[:1], node="B")
    assert acknowledged[PHONES[0]] == 2
    assert metrics.SESSION_MIRROR_ERRORS.labels("redis", "redis_unavailable")._value.get() == before + 1


def test_redis_only_fails_fast_while_redis_is_down(dynamodb, own_redis, use_mode):
    use_mode("redis_only")
    own_redis.kill()
    with pytest.raises(RedisUnavailable) as error:
        session_get(phone=PHONES[0])
    assert error.value.http_status == 503


@pytest.fixture
def dynamodb_down(settings, monkeypatch):
    """DynamoDB unreachable: the client points at a closed loopback port, one attempt, short timeouts."""

    def down():
        settings.AWS_ENDPOINT_URL_DYNAMODB = f"http://127.0.0.1:{free_port()}"
        settings.DYNAMODB_MAX_ATTEMPTS = 1
        settings.DYNAMODB_CONNECT_TIMEOUT = 0.2
        reset_client()

    return down


def test_cached_serves_hits_but_refuses_writes_while_dynamodb_is_down(dynamodb, own_redis, use_mode, dynamodb_down):
    use_mode("cached")
    write_all(PHONES[:1])
    dynamodb_down()
    session = session_get(phone=PHONES[0])  # a hot-tier hit
    assert session.version == 1
    with pytest.raises(DynamoDBUnavailable):
        session_save(session=session, expected_version=1)
    assert session_get(phone=PHONES[0]).version == 1  # nothing half-written


def test_write_behind_accepts_writes_while_dynamodb_is_down_and_keeps_them_dirty(
    dynamodb, own_redis, use_mode, dynamodb_down
):
    use_mode("cached_write_behind")
    write_all(PHONES[:1])
    dynamodb_down()
    acknowledged = write_all(PHONES[:1], node="B")
    assert acknowledged[PHONES[0]] == 2
    assert sessions_flush().failed == 1  # DynamoDB refused the write: nothing is cleared
    assert flush_backlog().size == 1  # still marked: the next flush after recovery writes it


def test_parallel_keeps_writing_redis_while_dynamodb_is_down(dynamodb, own_redis, use_mode, dynamodb_down):
    use_mode("parallel")
    write_all(PHONES[:1])
    dynamodb_down()
    before = metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", "dynamodb_unavailable")._value.get()
    acknowledged = write_all(PHONES[:1], node="B")
    assert acknowledged[PHONES[0]] == 2
    assert metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", "dynamodb_unavailable")._value.get() == before + 1


@pytest.mark.parametrize("mode", ["cutover", "dynamodb_only"])
def test_dynamodb_modes_fail_with_503_while_dynamodb_is_down(mode, dynamodb, own_redis, use_mode, dynamodb_down):
    use_mode(mode)
    dynamodb_down()
    with pytest.raises(DynamoDBUnavailable) as error:
        session_get(phone=PHONES[0])
    assert error.value.http_status == 503


def test_redis_only_ignores_a_dynamodb_outage(dynamodb, own_redis, use_mode, dynamodb_down):
    use_mode("redis_only")
    dynamodb_down()
    assert write_all(PHONES[:1])[PHONES[0]] == 1
