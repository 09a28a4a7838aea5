"""Backfill items/s with 1, 2 and 4 Celery worker processes against an endpoint that models DynamoDB's latency.

    python -m bench.migration_workers [--rows N] [--service-ms MS] [--workers 1 2 4] [--unit-rows N]

``BENCH_PROFILE=1``: one more 1-worker run, a solo-pool worker under pyinstrument, its text tree in
``bench/results/profile-migration-workers.txt`` (after the figures, which it does not change).

The endpoint is ``bench.stub_wsgi`` answering every BatchWriteItem after a fixed service time and doing
no work, so what is measured is the client side: the engine (source pages, transform, leases,
checkpoints, Celery) against a raw loop of BatchWriteItem calls of pre-built items with the same number
of requests in flight (workers × ``LIZZY_MIGRATION_WRITE_CONCURRENCY``), three times: in one process with
botocore's defaults, in one process with its parameter validation off (as the engine's ``bulk`` client has
it), and that in as many processes as the engine has workers (one interpreter lock each, as the engine's
workers have; ``LIZZY_MIGRATION_WRITE_CONCURRENCY`` calls in flight each). Control database: PostgreSQL
(``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/lizzy_bench_workers``, created);
broker: ``BENCH_BROKER_URL`` (default ``redis://127.0.0.1:6379/2``). Timing runs from dispatch to the run's
``finished_at`` (written by the unit that closes it ``succeeded``, just before its UPDATE), with the workers
already up; the run is looked at every 250 ms, not more often, so that looking costs the workers no CPU.

CPU seconds per 1,000 items (the load-robust figure on a shared machine, where items/s move with other
processes' load): of the worker processes (the prefork parent and its children, ``/proc/PID/stat``, over the
same interval) and of the raw loop's process (``time.process_time``, all its threads).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

from bench.common import ROOT, endpoint, raw_client

CONTROL_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lizzy_bench_workers")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/2")
WRITE_CONCURRENCY = 4  # LIZZY_MIGRATION_WRITE_CONCURRENCY's default
# One queue per invocation: Celery caches its router, so every run of this process routes to this queue.
QUEUE = f"bench-{uuid.uuid4().hex[:6]}"


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            db.execute(f'CREATE DATABASE "{name}"')


def _source(path: Path, rows: int) -> str:
    from tests.migration_app.factories import THINGS_DDL, things_rows

    with sqlite3.connect(path) as db:
        db.executescript(THINGS_DDL)
        db.executemany("INSERT INTO things VALUES (:id, :name, :price, :active, :updated_at, :tags)", things_rows(rows))
    return f"sqlite:///{path}"


def _env(stub: str, queue: str, unit_rows: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.local",
        "LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE": "1",  # a source reached as its server's superuser, trusted here
        "DATABASE_URL": CONTROL_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "AWS_ENDPOINT_URL_DYNAMODB": stub,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "LIZZY_MIGRATION_QUEUE": queue,
        "LIZZY_MIGRATION_UNIT_ROWS": str(unit_rows),
        "LIZZY_LOG_LEVEL": "WARNING",
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (a prefork worker's pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.append(int(child))
    total = 0.0
    for each in pids:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat(5))
    return total


def engine(
    stub: str, source: str, rows: int, workers: int, unit_rows: int | None = None, profile: Path | None = None
) -> tuple[float, float]:
    """Items/s of one backfill run by ``workers`` Celery worker processes (prefork), and their CPU seconds
    per 1,000 items. ``profile``: one solo-pool worker under pyinstrument instead, its text tree written there
    (the main thread: source, transform, checkpoints, unit boundaries; not the writer threads)."""
    queue = QUEUE
    env = _env(stub, queue, unit_rows=unit_rows or max(rows // (workers * 8), 500))
    os.environ.update(env)
    import django

    django.setup()
    from lizzy.celery import app
    from migration_app.models import MigrationRun, RunStatus
    from migration_app.services.dispatch import run_dispatch
    from migration_app.services.plans import plan_context, plan_save
    from migration_app.services.runs import run_create
    from tests.migration_app.factories import things_mapping

    app.conf.task_routes = {"migration_app.tasks.*": {"queue": queue}}
    command = [sys.executable, "-m", "celery", "-A", "lizzy", "worker", "-Q", queue, "-c", str(workers)]
    if profile:
        command[1:2] = ["-m", "pyinstrument", "-i", "0.0005", "-r", "text", "-o", str(profile), "-m"]
        command += ["-P", "solo"]
    worker = subprocess.Popen(
        command
        + ["--prefetch-multiplier", "1", "-l", "warning", "--without-gossip", "--without-mingle", "-n", f"{queue}@%h"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
        name = f"{queue}-{workers}{'-profiled' if profile else ''}"
        plan = plan_save(name=name, source_url=source, mapping=things_mapping(table=f"Things-{name}"))
        with plan_context(plan=plan) as context:
            run = run_create(context=context)
        cpu = _cpu_seconds(worker.pid)
        started = time.time()  # wall clock, as the run's finished_at (same machine)
        run_dispatch(run=run)
        while True:
            run = MigrationRun.objects.get(pk=run.pk)
            if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                break
            # Seldom: the clock stops at the run's finished_at, not when this loop sees it. Polled every 10 ms,
            # this process and PostgreSQL took a tenth of a core from the workers on 2 cores (0.1 + 0.06,
            # sampled from /proc at 4 workers), which the raw loops do not pay.
            time.sleep(0.25)
        seconds = run.finished_at.timestamp() - started
        cpu = _cpu_seconds(worker.pid) - cpu
        if run.status != RunStatus.SUCCEEDED or run.items_written != rows:
            raise RuntimeError(f"run #{run.pk}: {run.status}, {run.items_written} written: {run.last_error}")
        return rows / seconds, cpu * 1000 / rows
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:  # after the figures: a warm shutdown that hangs is not measured here
            print(f"the worker did not stop within 30 s of SIGTERM; killed (queue {queue})", file=sys.stderr)
            worker.kill()
            worker.wait(30)


def engine_items(source: str) -> list[dict]:
    """The items the engine writes for ``source`` (the same mapping), pre-built in DynamoDB's wire format."""
    from lizzy.dynamodb import serialize_item
    from migration_app.models import MigrationPlan
    from migration_app.services.plans import plan_context
    from tests.migration_app.factories import things_mapping

    plan = MigrationPlan(name="raw", source_url=source, mapping=things_mapping(table="Raw"))
    items = []
    with plan_context(plan=plan) as context:
        (entity,) = context.entities
        relation = context.source.relation(entity)
        for page in context.source.pages(relation, after=None, upper=None, page_size=1000):
            items += [serialize_item(entity.transform(row)) for row in page]
    return items


def raw(
    stub: str,
    rows: int,
    in_flight: int,
    items: list[dict] | None = None,
    validate: bool = True,
    ready: Callable[[], object] | None = None,
) -> tuple[float, float]:
    """Items/s of BatchWriteItem calls of 25 pre-built items, ``in_flight`` at a time (the limit), and the
    process's CPU seconds per 1,000 items.

    ``items``: the engine's own items (wire format), so both sides send the same bytes; without, the old
    two-attribute items (``PK``, ``name``), cheaper to serialize than the engine's. ``validate=False``:
    botocore's ``parameter_validation`` off, as the engine's ``bulk`` client has it (a public option of
    botocore's ``Config``; the engine's pass-through serializer is not, so the raw loop keeps botocore's).
    ``ready``: called once the client and the requests are built, before the clock starts.
    """
    client = raw_client(stub)
    if not validate:
        client = boto3.client(
            "dynamodb",
            endpoint_url=stub,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - a local endpoint
            config=client.meta.config.merge(Config(parameter_validation=False)),
        )
    if items is None:
        items = [{"PK": {"S": f"THING#{n}"}, "name": {"S": f"thing {n}"}} for n in range(rows)]
    chunks = [[{"PutRequest": {"Item": item}} for item in items[i : i + 25]] for i in range(0, rows, 25)]
    if ready:
        ready()
    cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        list(pool.map(lambda chunk: client.batch_write_item(RequestItems={"Raw": chunk}), chunks))
    return rows / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / rows


def _raw_part(stub: str, items: list[dict], in_flight: int, start, results) -> None:  # noqa: ANN001
    """One process of ``raw_processes``: its share of the items, once every process is ready."""
    results.put(raw(stub, len(items), in_flight, items, validate=False, ready=start.wait)[1] * len(items) / 1000)


def raw_processes(stub: str, items: list[dict], processes: int, in_flight: int) -> tuple[float, float]:
    """``raw`` (parameter validation off) in ``processes`` processes of ``in_flight`` calls each, as many as
    the engine's worker processes: one interpreter lock each, as the engine has; items/s from the moment
    all are ready to the last one's end, and their CPU seconds per 1,000 items."""
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(processes + 1), context.Queue()
    share = -(-len(items) // processes)
    parts = [
        context.Process(target=_raw_part, args=(stub, items[i : i + share], in_flight, start, results))
        for i in range(0, len(items), share)
    ]
    for part in parts:
        part.start()
    start.wait()
    started = time.perf_counter()
    cpu = sum(results.get(timeout=600) for _part in parts)
    seconds = time.perf_counter() - started
    for part in parts:
        part.join(30)
    return len(items) / seconds, cpu * 1000 / len(items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--service-ms", type=float, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--unit-rows", type=int, default=None, help="rows a unit (default: rows ÷ (workers × 8))")
    args = parser.parse_args()
    _ensure_database(CONTROL_URL)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "lizzy.settings.local", "DATABASE_URL": CONTROL_URL})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True)
    source = _source(Path(tempfile.mkdtemp()) / "things.sqlite3", args.rows)
    threads = max(args.workers) * WRITE_CONCURRENCY * 2
    with endpoint(
        "stub", env={"BENCH_STUB_DISCARD": "1", "BENCH_STUB_SERVICE_MS": str(args.service_ms)}, threads=threads
    ) as stub:
        base = None
        items = None
        for workers in args.workers:
            engine_rate, engine_cpu = engine(stub, source, args.rows, workers, args.unit_rows)
            items = items or engine_items(source)
            in_flight = workers * WRITE_CONCURRENCY
            raw_rate, raw_cpu = raw(stub, args.rows, in_flight, items)
            lean_rate, lean_cpu = raw(stub, args.rows, in_flight, items, validate=False)
            split_rate, split_cpu = raw_processes(stub, items, workers, WRITE_CONCURRENCY)
            base = base or engine_rate
            print(
                f"{workers} worker(s): engine {engine_rate:6.0f} items/s ({engine_rate / base:4.2f}x of 1, "
                f"{engine_cpu:5.3f} CPU s/1k items); raw loop of the same items, {in_flight} in flight: "
                f"{raw_rate:6.0f} items/s ({raw_cpu:5.3f} CPU s/1k), engine/raw {engine_rate / raw_rate:4.2f}; "
                f"parameter validation off {lean_rate:6.0f} items/s ({lean_cpu:5.3f} CPU s/1k), "
                f"engine/raw {engine_rate / lean_rate:4.2f}; the same in {workers} process(es) {split_rate:6.0f} "
                f"items/s ({split_cpu:5.3f} CPU s/1k), engine/raw {engine_rate / split_rate:4.2f}; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if os.environ.get("BENCH_PROFILE") == "1":
            out = ROOT / "bench" / "results"
            out.mkdir(exist_ok=True)
            engine(stub, source, args.rows, 1, args.unit_rows, profile=out / "profile-migration-workers.txt")


if __name__ == "__main__":
    main()
