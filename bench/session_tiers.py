"""Session read/write latency per mode: hot-tier hits vs DynamoDB (moto's HTTP server) on this machine.

    REDIS_URL=redis://127.0.0.1:6379/4 python -m bench.session_tiers [turns]

Uses a key prefix and table suffix of its own and deletes its Redis keys afterwards.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[int(len(ordered) * 0.95) - 1] * 1000
    return f"p50 {p50:6.2f} ms  p95 {p95:6.2f} ms"


def main() -> None:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
    from moto.server import ThreadedMotoServer

    from tests.fixtures.services import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"
    import django

    django.setup()
    from django.conf import settings

    from lizzy.dynamodb import reset_client
    from lizzy.redis import get_redis, reset_redis
    from lizzy.tables import tables_ensure
    from sessions_app.selectors import session_get
    from sessions_app.services.sessions import session_new, session_save

    settings.AWS_ENDPOINT_URL_DYNAMODB = f"http://127.0.0.1:{port}"
    settings.LIZZY_ENV = f"bench{uuid.uuid4().hex[:6]}"
    settings.LIZZY_REDIS_PREFIX = f"lizzy:bench{uuid.uuid4().hex[:6]}:"
    reset_client()
    reset_redis()
    tables_ensure()
    try:
        for mode in ("dynamodb_only", "cached", "cached_write_behind", "redis_only"):
            settings.LIZZY_SESSION_STORE_MODE = mode
            phone = f"+1206555{hash(mode) % 10000:04d}"
            session = session_save(session=session_new(phone=phone), expected_version=None)
            reads, writes = [], []
            for _ in range(turns):
                started = time.perf_counter()
                session = session_get(phone=phone)
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                session = session_save(session=session, expected_version=session.version)
                writes.append(time.perf_counter() - started)
            print(f"{mode:20s} read  {percentiles(reads)}   write {percentiles(writes)}")
    finally:
        client = get_redis()
        for name in client.scan_iter(match=f"{settings.LIZZY_REDIS_PREFIX}*"):
            client.delete(name)
        server.stop()


if __name__ == "__main__":
    main()
