"""Benchmark 3: ``POST /api/v1/sms/inbound`` end to end under gunicorn vs a no-op DRF view on the same server.

The server is the product (``bench.settings``: local settings, DEBUG off, plus ``/bench/noop``) under
gunicorn (one gthread worker), DynamoDB is moto under gunicorn, Redis a private server. One client on
loopback with a kept-alive connection sends N webhook turns and N no-op posts in alternating blocks.
Reported per mode: p50/p95 of both, their difference, the store time of each turn (the server's
``bench.store_timer`` middleware times every DynamoDB and Redis call and answers the sum in a header),
and each turn minus its own store time: engine + framework overhead beyond the store calls (target
≤ 2 ms at p95), also net of what the no-op view costs.

Also: DynamoDB calls (``record_calls``) and Redis commands (the private server's ``INFO commandstats``)
per webhook turn, per store mode, measured in this process with the engine called directly.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from bench.common import ROOT, Result, _stop, endpoint, free_port, percentile, redis_server, wait_for_port

NAME = "webhook"
PHONE = "+12065550100"  # the demo customer (seed_demo)
MODES = ("dynamodb_only", "cached", "cached_write_behind")


def run(*, smoke: bool = False) -> list[Result]:
    turns = 20 if smoke else 300
    blocks = 2 if smoke else 5
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url, endpoint("moto-gunicorn") as url:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.sqlite3'}",
            "AWS_ENDPOINT_URL_DYNAMODB": url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "LIZZY_ENV": f"bench{uuid.uuid4().hex[:6]}",
            "REDIS_URL": redis_url,
            "LIZZY_REDIS_PREFIX": f"lizzy:bench{uuid.uuid4().hex[:6]}:",
            "TWILIO_AUTH_TOKEN": "",
            "LIZZY_LOG_LEVEL": "INFO",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        manage = [sys.executable, "manage.py"]
        for command in (["migrate", "--no-input", "-v", "0"], ["ensure_tables"], ["seed_demo"]):
            subprocess.run(manage + command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        for mode in MODES if not smoke else MODES[:2]:
            results.append(
                _serve_and_measure(
                    {**env, "LIZZY_SESSION_STORE_MODE": mode}, mode, turns, blocks, warm=3 if smoke else 20
                )
            )
        results += _calls_per_turn(env, smoke)
    return results


def _serve_and_measure(env: dict[str, str], mode: str, turns: int, blocks: int, warm: int) -> Result:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "lizzy.wsgi:application", "--workers", "1", "--threads", "2"]
    args += ["--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--keep-alive", "30", "--log-level", "warning"]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        counter = iter(range(10**9))

        def post(path: str, text: str) -> tuple[float, float]:
            body = urlencode({"From": PHONE, "To": "+12065550000", "Body": text, "MessageSid": f"SM{next(counter)}"})
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            return elapsed, float(response.getheader("X-Bench-Store-Ms", "0")) / 1000

        for _ in range(warm):  # warm: imports, connections, caches
            post("/api/v1/sms/inbound", "hi")
            post("/bench/noop", "hi")
        webhook, noop = [], []
        per_block = max(1, turns // blocks)
        for _ in range(blocks):
            webhook += [post("/api/v1/sms/inbound", "hi" if index % 2 else "HELP") for index in range(per_block)]
            noop += [post("/bench/noop", "hi") for _ in range(per_block)]
        connection.close()
    finally:
        _stop(proc)
    latency = [total for total, _store in webhook]
    store = [store for _total, store in webhook]
    beyond = [total - store for total, store in webhook]  # each request minus its own store calls
    noop_latency = [total for total, _store in noop]
    p50_a, p95_a = percentile(latency, 0.5) * 1000, percentile(latency, 0.95) * 1000
    p50_b, p95_b = percentile(noop_latency, 0.5) * 1000, percentile(noop_latency, 0.95) * 1000
    p50_x, p95_x = percentile(beyond, 0.5) * 1000, percentile(beyond, 0.95) * 1000
    p50_s, p95_s = percentile(store, 0.5) * 1000, percentile(store, 0.95) * 1000
    return Result(
        bench=NAME,
        metric="p95 ms",
        a_label=f"webhook turn ({mode}) p50 {p50_a:.2f} / p95",
        a=p95_a,
        b_label=f"no-op DRF view p50 {p50_b:.2f} / p95",
        b=p95_b,
        unit="ms",
        target="overhead beyond store calls ≤ 2 ms at p95",
        endpoint="moto-gunicorn",
        note=(
            f"difference p50 {p50_a - p50_b:.2f} / p95 {p95_a - p95_b:.2f} ms; store calls per turn p50 {p50_s:.2f} / "
            f"p95 {p95_s:.2f} ms; turn minus its own store calls p50 {p50_x:.2f} / p95 {p95_x:.2f} ms, "
            f"of which beyond the no-op view p50 {p50_x - p50_b:.2f} / p95 {p95_x - p95_b:.2f} ms"
        ),
    )


def _calls_per_turn(env: dict[str, str], smoke: bool) -> list[Result]:
    """DynamoDB calls and Redis commands of one turn in each mode, the engine called in this process."""
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "AWS_ENDPOINT_URL_DYNAMODB", "LIZZY_ENV", "REDIS_URL"):
        os.environ[name] = env[name]
    os.environ["LIZZY_REDIS_PREFIX"] = env["LIZZY_REDIS_PREFIX"]
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)  # one INFO line per turn is the product's; here it would flood the output
    from django.conf import settings

    from lizzy.dynamodb import dynamodb_get_item, item_size
    from lizzy.redis import get_redis
    from lizzy.tables import SESSIONS
    from sessions_app.services.workflow.engine import sms_message_handle
    from tests.fixtures.dynamodb_hooks import record_calls

    redis = get_redis()
    results = []
    turns = 5 if smoke else 20
    for mode in MODES:
        settings.LIZZY_SESSION_STORE_MODE = mode
        sms_message_handle(phone=PHONE, text="hi", message_sid=f"SMwarm{mode}")  # fills the hot tier
        before = redis.info("commandstats")  # a difference, not CONFIG RESETSTAT: the server may be shared
        with record_calls() as calls:
            for index in range(turns):
                sms_message_handle(phone=PHONE, text="hi", message_sid=f"SM{mode}{index}")
        after = redis.info("commandstats")
        stats = {
            name: {"calls": value["calls"] - before.get(name, {}).get("calls", 0)}
            for name, value in after.items()
            if value["calls"] - before.get(name, {}).get("calls", 0) > 0
        }
        stored = dynamodb_get_item(table=SESSIONS.name, key={"phone": PHONE}, consistent=True)
        size = item_size(stored) if stored else 0
        commands = sum(v["calls"] for k, v in stats.items() if not k.startswith(("cmdstat_config", "cmdstat_info")))
        by_operation: dict[str, int] = {}
        for operation, _table in calls:
            by_operation[operation] = by_operation.get(operation, 0) + 1
        detail = ", ".join(f"{op} {count / turns:g}" for op, count in sorted(by_operation.items())) or "none"
        redis_detail = ", ".join(
            f"{k.removeprefix('cmdstat_')} {v['calls'] / turns:g}"
            for k, v in sorted(stats.items())
            if not k.startswith(("cmdstat_config", "cmdstat_info"))
        )
        results.append(
            Result(
                bench="calls_per_turn",
                metric="calls per webhook turn",
                a_label=f"{mode}: DynamoDB calls",
                a=len(calls) / turns,
                b_label="Redis commands",
                b=commands / turns,
                unit="calls",
                target="(reported)",
                endpoint=mode,
                note=f"DynamoDB: {detail}; Redis: {redis_detail or 'none'}; session item {size} bytes",
            )
        )
    return results
