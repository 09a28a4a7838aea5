"""Benchmark 2: the store's cached read (a hot-tier hit) vs raw redis GET + json.loads. Target ≤ 1.3×.

A: ``session_get`` in ``cached`` mode with the session in Redis (mode lookup, breaker, Redis round trip,
JSON → Session, metrics). B: the same redis-py client settings, ``GET`` of the same key + ``json.loads``.
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


def _measure(reads: int, runs: int) -> list[Result]:
    from django.conf import settings

    from lizzy.dynamodb import record_calls
    from lizzy.redis import _SESSION_GET_SCRIPT, SESSION_KEY, _script, get_redis, key
    from lizzy.tables import SESSIONS, tables_ensure
    from sessions_app.selectors import session_get
    from sessions_app.services.sessions import session_new, session_save

    tables_ensure(specs=[SESSIONS])
    settings.LIZZY_SESSION_STORE_MODE = "cached"
    phone = "+12065550123"
    session = session_new(phone=phone, customer_id="CUST123")
    session.session_data.update({"filterModel": "HRX217", "selectedEquipmentName": "Honda HRX217 mower"})
    session_save(session=session, expected_version=None)  # write-through fills the hot tier
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

    def floor() -> float:
        # What the hot tier's design needs at least: value AND expiry atomically (one EVALSHA), parsed.
        script = _script(client, _SESSION_GET_SCRIPT)

        def loop():
            for _ in range(reads):
                json.loads(script(keys=[name])[0])

        return timed(loop) / reads

    a, b = compare(runs, product, raw)
    f, b2 = compare(runs, floor, raw)
    profiled(NAME, product)
    client.delete(name)
    floor_row = Result(
        bench=NAME,
        metric="µs per read",
        a_label="raw EVALSHA(GET+EXPIRETIME) + json.loads",
        a=f * 1e6,
        b_label="raw GET + json.loads",
        b=b2 * 1e6,
        unit="µs",
        target="(floor of the design)",
        endpoint="redis",
    )
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
        floor_row,
    ]
