"""Benchmark 2: the store's cached read (a hot-tier hit) vs raw redis GET + json.loads. Target ≤ 1.3×.

A: ``session_get`` in ``cached`` mode with the session in Redis (mode lookup, breaker, one GET, JSON →
Session with its ttl derived from lastActivity, metrics). B: the same redis-py client, ``GET`` of the same
key + ``json.loads``. The session is what a webhook turn leaves (profile, selections, packed turn log).
DynamoDB is moto under gunicorn; a hit never calls it (checked with ``record_calls``).
"""

from __future__ import annotations

import json

from bench.common import Result, compare, endpoint, profiled, redis_server, setup_django, timed, use_redis

NAME = "hot_read"


def run(*, smoke: bool = False) -> list[Result]:
    reads = 50 if smoke else 2000
    runs = 2 if smoke else 7
    with redis_server() as redis_url, endpoint("moto-gunicorn") as url:
        setup_django(url)
        use_redis(redis_url)
        return _measure(reads, runs)


def _realistic_session(phone: str):
    """A session as the webhook leaves it after a long conversation: profile, selections, full turn log."""
    from sessions_app.services.sessions import session_new
    from sessions_app.services.workflow.engine import TurnLog, turn_log_write

    session = session_new(phone=phone, customer_id="CUST123")
    session.session_data.update(
        {"selectedEquipmentId": "EQ123", "selectedEquipmentName": "Honda HRX217", "filterModel": "HRX217"}
    )
    session.cached_data = {
        "customerProfile": {
            "customerId": "CUST123",
            "name": "Jordan Rivera",
            "equipment": [
                {"equipmentId": "EQ123", "model": "HRX217", "name": "Honda HRX217", "serialNumber": "MZCG-1234567"}
            ],
        },
        "profileCacheTime": "2026-11-22T02:09:28Z",
    }
    history = [
        {"at": f"2026-11-22T02:09:{i:02d}Z", "sid": f"SM{i:032d}", "from": "MAIN_MENU", "to": "MAIN_MENU", "inLen": 4}
        for i in range(50)
    ]
    menu = "Hi Jordan! Reply 1) My equipment 2) Find parts 3) Report a problem 4) Transactions 5) Talk to us"
    replies = [{"sid": f"SM{i:032d}", "reply": menu, "effects": []} for i in range(25, 50)]
    turn_log_write(session, TurnLog(history, replies))
    session.extra["turnCount"] = 50
    return session


def _measure(reads: int, runs: int) -> list[Result]:
    from django.conf import settings

    from lizzy.redis import SESSION_KEY, get_redis, key
    from lizzy.tables import SESSIONS, tables_ensure
    from sessions_app.selectors import session_get
    from sessions_app.services.sessions import session_save
    from tests.fixtures.dynamodb_hooks import record_calls

    tables_ensure(specs=[SESSIONS])
    settings.LIZZY_SESSION_STORE_MODE = "cached"
    phone = "+12065550123"
    session_save(session=_realistic_session(phone), expected_version=None)  # write-through fills the hot tier
    client = get_redis()
    name = key(SESSION_KEY, phone=phone)
    with record_calls() as calls:
        assert session_get(phone=phone) is not None
    if calls:
        raise RuntimeError(f"a hot-tier hit called DynamoDB: {calls}")

    def product() -> float:
        def loop():
            for _ in range(reads):
                session_get(phone=phone)

        return timed(loop) / reads

    def raw() -> float:
        def loop():
            for _ in range(reads):
                json.loads(client.get(name))

        return timed(loop) / reads

    a, b = compare(runs, product, raw)
    profiled(NAME, product)
    client.delete(name)
    return [
        Result(
            bench=NAME,
            metric="µs per read",
            a_label="cached session_get (hit)",
            a=a * 1e6,
            b_label="raw GET + json.loads",
            b=b * 1e6,
            unit="µs",
            target="≤ 1.3×",
            endpoint="redis",
        ),
    ]
