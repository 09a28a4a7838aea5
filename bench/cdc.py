"""Benchmark 9: change data capture at a steady offered rate: changes/s applied and commit → DynamoDB lag.

``BENCH_CDC_WRITERS`` source connections (default 5) commit single-row changes (inserts and updates,
paced) at ``BENCH_CDC_RATE`` changes/s in total (default 500) for ``BENCH_CDC_SECONDS`` (default 20) while
one CDC worker (``cdc_run``) applies them to moto behind gunicorn (keep-alive). Apply lag of a change = the
end of the worker step that wrote it and advanced the slot (Python's clock) − its commit time on the source
(the server's clock; same machine). Reported:

- applied changes/s vs offered changes/s (target ≥ 0.95: the worker keeps up);
- p95 apply lag vs the issue's goal of 1 s (target A/B < 1), p50 in the note.

The worker polls every ``LIZZY_CDC_POLL_SECONDS`` when idle (0.1 s here: the product's default is 0.5 s,
which adds up to half a second of lag when the source is quiet). The source and state databases are the
migration benchmark's (``BENCH_PG_SOURCE``, ``BENCH_STATE_URL``); the slot is dropped at the end, whatever
happens.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid

from bench.common import Result, endpoint, percentile
from bench.migration import _setup, ensure_database, source_url

NAME = "cdc"


def _writer(url: str, rate: float, seconds: float, offset: int, stop: threading.Event, counts: list[int]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        started = time.monotonic()
        done = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            due = started + done / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = offset + done // 2
            if done % 2 == 0:
                db.execute("INSERT INTO bench_cdc VALUES (%s, 0, 'payload')", [key])
            else:
                db.execute("UPDATE bench_cdc SET v = v + 1 WHERE id = %s", [key])
            done += 1
        counts.append(done)


def run(*, smoke: bool = False) -> list[Result]:
    rate = 100.0 if smoke else float(os.environ.get("BENCH_CDC_RATE", "500"))
    seconds = 2.0 if smoke else float(os.environ.get("BENCH_CDC_SECONDS", "20"))
    import psycopg

    ensure_database(source_url())
    table = f"bench_cdc_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(source_url(), autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bench_cdc")
        db.execute("CREATE TABLE bench_cdc (id bigint PRIMARY KEY, v bigint NOT NULL, note text)")
    with endpoint("moto-gunicorn") as url:
        _setup(url)
        from django.conf import settings

        from migration_app.cdc.streams import cdc_stream_drop
        from migration_app.cdc.worker import cdc_run
        from migration_app.models import Phase
        from migration_app.services.phases import plan_advance
        from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
        from migration_app.services.runs import run_create, run_execute

        settings.LIZZY_CDC_POLL_SECONDS = 0.1
        settings.LIZZY_CDC_SLOT_PREFIX = "lizzy_bench"
        mapping = {
            "rules": [
                {
                    "rule-type": "object-mapping",
                    "rule-id": "1",
                    "rule-name": "cdc",
                    "rule-action": "map-record-to-record",
                    "object-locator": {"schema-name": "public", "table-name": "bench_cdc"},
                    "target-table-name": f"BenchCdc-{table}",
                }
            ]
        }
        plan = plan_save(name=f"bench-{table}", source_url=source_url(), mapping=mapping, cdc=True)
        with plan_context(plan=plan) as context:
            plan_setup_tables(context=context)
        plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="bench")
        try:
            with plan_context(plan=plan) as context:
                run_execute(run=run_create(context=context), context=context)
            plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="bench")
            lags: list[float] = []

            def on_step(applied: dict) -> None:
                now = dt.datetime.now(dt.UTC)
                lags.extend((now - moment).total_seconds() for moment in applied["commit_times"])

            stop = threading.Event()
            counts: list[int] = []
            connections = int(os.environ.get("BENCH_CDC_WRITERS", "5"))
            writers = [
                threading.Thread(
                    target=_writer, args=(source_url(), rate / connections, seconds, n * 10**9, stop, counts)
                )
                for n in range(connections)
            ]
            worker = threading.Thread(
                target=cdc_run, kwargs={"plan": plan, "max_seconds": seconds + 5, "on_step": on_step}
            )
            worker.start()
            started = time.monotonic()
            for thread in writers:
                thread.start()
            for thread in writers:
                thread.join()
            offered_seconds = time.monotonic() - started
            worker.join()
            offered = sum(counts)
        finally:
            cdc_stream_drop(plan=plan, reason="benchmark finished")
    applied = len(lags)
    p50, p95 = percentile(lags, 0.5), percentile(lags, 0.95)
    note = f"{offered} changes in {offered_seconds:.1f} s offered, {applied} applied; p50 lag {p50:.3f} s"
    return [
        Result(NAME, "cdc_throughput", "applied changes/s", applied / offered_seconds, "offered changes/s",
               offered / offered_seconds, "changes/s", "A/B >= 0.95", "moto-gunicorn", note),
        Result(NAME, "cdc_apply_lag", "p95 apply lag", p95, "goal", 1.0, "s", "A/B < 1", "moto-gunicorn", note),
    ]  # fmt: skip
