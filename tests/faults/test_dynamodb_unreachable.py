"""DynamoDB's endpoint goes away mid-load and comes back on the same port.

A real HTTP endpoint (moto's server) is stopped and started again while conversations run through the
API. Counted: 503s (each must name DynamoDB), acknowledged writes lost, writes applied although the
client was told 503 (they show up as duplicated turns), and whether turns succeed again afterwards
without anything being reset by hand.
"""

from __future__ import annotations

import time
import uuid

import pytest
from moto.server import ThreadedMotoServer

from bench.conversations import run_conversations
from lizzy.dynamodb import reset_client
from lizzy.tables import tables_ensure
from sessions_app.services.store.breaker import redis_breaker
from tests.figures import record_figure
from tests.fixtures.services import free_port

PHONES = [f"+1206555{n:04d}" for n in range(200, 208)]


@pytest.fixture
def restartable_dynamodb(settings, monkeypatch):
    """A moto server of this test's own; stopping it closes the port, starting it reopens the same one."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    settings.AWS_ENDPOINT_URL_DYNAMODB = url
    settings.LIZZY_ENV = f"t{uuid.uuid4().hex[:10]}"
    settings.DYNAMODB_MAX_ATTEMPTS = 2
    settings.DYNAMODB_CONNECT_TIMEOUT = 0.3
    settings.DYNAMODB_READ_TIMEOUT = 2.0
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    reset_client()
    tables_ensure()
    holder = {"server": server}

    def stop() -> None:
        holder["server"].stop()

    def start() -> None:
        # moto keeps its state in the process, so the tables and items are still there
        holder["server"] = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        holder["server"].start()

    yield stop, start
    holder["server"].stop()
    reset_client()


@pytest.mark.parametrize("mode", ["dynamodb_only", "cached"])
def test_dynamodb_unreachable_answers_503_then_recovers(
    mode, restartable_dynamodb, own_redis, inprocess_send, settings
):
    stop, start = restartable_dynamodb
    settings.LIZZY_SESSION_STORE_MODE = mode
    redis_breaker.reset()
    marks: dict[str, float] = {}

    def during() -> None:
        time.sleep(0.5)
        stop()
        marks["down"] = time.monotonic()
        time.sleep(0.8)
        start()
        marks["up"] = time.monotonic()

    tally, _ = run_conversations(phones=PHONES, send_factory=inprocess_send, seconds=2.5, workers=4, during=during)

    summary = tally.summary()
    acked_after = sum(1 for sent, _answered in tally.ack_times if sent > marks["up"])
    record_figure(f"faults/dynamodb-unreachable[{mode}]", acknowledged_after_recovery=acked_after, **summary)
    assert tally.errors_5xx > 0, "the outage was not noticed: the test did not test anything"
    assert set(summary["error_codes"]) == {"503:dynamodb_unavailable"}
    assert tally.lost == 0
    assert tally.duplicated == 0, "a write answered 503 was applied anyway"
    assert acked_after > 0, "turns did not succeed again once the endpoint was back"
