"""Benchmarks 4, 5 and 6: migrating PostgreSQL rows into DynamoDB, its memory, and its validation.

4. The migration engine (plan → run → segments → ``dynamodb_batch_write``) over N rows of a PostgreSQL
   table with 1, 2 and 4 segments, items/s, vs (a) a raw ``batch_write_item`` loop of the same items
   pre-built (target ≥ 0.85×) and (b) seed 002's loop: one ``put_item`` per row (target ≥ 10×).
5. Peak RSS of a process migrating 10k rows vs a process migrating 10× (``--big``: 100×) as many rows
   (target ≤ 1.2×: streaming, not loading). Each size runs in a fresh process (VmHWM); its tables are
   created on moto, its rows go to the stub endpoint with BENCH_STUB_DISCARD=1, so 1M rows take
   minutes and moto's memory (which keeps every item) is not in the way.
6. ``plan_validate`` (parallel Scan of the target + the source streamed through the mapping + hashes)
   items/s vs a raw parallel Scan (4 segments, 4 threads) of the same table (target ≥ 0.8×).

Sources live in the PostgreSQL database ``BENCH_PG_SOURCE`` (default ``lizzy_bench_src`` on 127.0.0.1), the
engine's own state (plans, runs, segments) in ``BENCH_STATE_URL`` (default ``lizzy_bench_state``): PostgreSQL, so
segments really run in parallel threads (SQLite would serialise them).
Rows: ``BENCH_MIGRATION_ROWS`` (default 20000; the issue's 100k: ``BENCH_MIGRATION_ROWS=100000``).

    python -m bench.migration --rss ROWS   # one memory measurement (used by benchmark 5)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import ROOT, Result, endpoint, profiled, raw_client, setup_django, timed

NAME = "migration"
DEFAULT_SOURCE = "postgresql://postgres@127.0.0.1:5432/lizzy_bench_src"
DEFAULT_STATE = "postgres://postgres@127.0.0.1:5432/lizzy_bench_state"
SEED002_ROWS = 2000  # one PutItem per row is slow: its rate is measured on the first rows only


def source_url() -> str:
    return os.environ.get("BENCH_PG_SOURCE", DEFAULT_SOURCE)


def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet (same server, ``postgres`` db)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = base.replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def source_table(rows: int) -> str:
    """``bench_customers_<rows>`` in the source database, created once (generate_series: seconds)."""
    import psycopg

    name = f"bench_customers_{rows}"
    ensure_database(source_url())
    with psycopg.connect(source_url()) as connection:  # one transaction: never a half-filled table
        exists = connection.execute("SELECT to_regclass(%s)", [f"public.{name}"]).fetchone()[0]
        if exists is None:
            connection.execute(
                f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text NOT NULL, phone text, email text, "  # noqa: S608
                "city text, balance numeric(10,2), visits integer, created_at timestamptz NOT NULL)"
            )
            connection.execute(
                f"INSERT INTO {name} SELECT g, 'Customer ' || g, '+1206' || lpad(g::text, 7, '0'), "  # noqa: S608
                "'c' || g || '@example.com', (ARRAY['Seattle','Tacoma','Everett','Bellevue'])[1 + g %% 4], "
                "(g %% 100000) / 100.0, g %% 50, timestamptz '2024-01-01' + g * interval '1 minute' "
                "FROM generate_series(1, %s) AS g",
                [rows],
            )
    return name


def _mapping(table: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "customers",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": "public", "table-name": table},
                "target-table-name": f"{table.title().replace('_', '')}-{{env}}",  # one table per source
            }
        ]
    }


def _setup(url: str) -> None:
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_STATE_URL", DEFAULT_STATE)
    ensure_database(os.environ["DATABASE_URL"])
    # moto answers a segmented Scan page of a big table in seconds (it walks the whole table for every
    # page); the product's 5 s read timeout is for DynamoDB, not for this endpoint.
    os.environ["LIZZY_DYNAMODB_READ_TIMEOUT"] = "120"
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _plan(table: str):
    from migration_app.services.plans import plan_context, plan_save, plan_setup_tables

    plan = plan_save(name=f"bench-{uuid.uuid4().hex[:8]}", source_url=source_url(), mapping=_mapping(table))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def _migrate(plan, segments: int) -> int:
    from migration_app.services.plans import plan_context
    from migration_app.services.runs import run_create, run_execute

    with plan_context(plan=plan) as context:
        run = run_execute(run=run_create(context=context, segments=segments), context=context, workers=segments)
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.pk} {run.status}: {run.last_error}")
    return run.items_written


def run(*, smoke: bool = False, big: bool = False) -> list[Result]:
    rows = 300 if smoke else int(os.environ.get("BENCH_MIGRATION_ROWS", "20000"))
    runs = 2 if smoke else 5
    with endpoint("moto-gunicorn") as url:
        _setup(url)
        table = source_table(rows)
        plan = _plan(table)
        results = _throughput(url, plan, rows, runs)
        # moto walks the whole table for every Scan page: validation gets a smaller table of its own.
        check_rows = 300 if smoke else int(os.environ.get("BENCH_VALIDATION_ROWS", "5000"))
        check_plan = _plan(source_table(check_rows))
        _migrate(check_plan, 1)
        results.append(_validation(url, check_plan, check_rows, runs))
        results.append(_memory(url, smoke, big))
    return results


def _prebuilt_items(plan) -> tuple[str, list[dict]]:
    from lizzy.dynamodb import serialize_item
    from migration_app.services.plans import plan_context

    items = []
    with plan_context(plan=plan) as context:
        entity = context.entities[0]
        relation = context.source.relation(entity)
        for rows in context.source.pages(relation, after=None, upper=None, page_size=1000):
            items += [serialize_item(entity.transform(row)) for row in rows]
    return entity.target_table, items


def _throughput(url: str, plan, rows: int, runs: int) -> list[Result]:
    from migration_app.services.plans import plan_context

    client = raw_client(url)
    table, items = _prebuilt_items(plan)

    def raw() -> float:
        def loop():
            for start in range(0, len(items), 25):
                chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
                if client.batch_write_item(RequestItems={table: chunk}).get("UnprocessedItems"):
                    raise RuntimeError("the endpoint left items unprocessed")

        return len(items) / timed(loop)

    def seed002() -> float:
        """Seed 002's migrateTable: SELECT, then transform and PutItem one row at a time."""
        from lizzy.dynamodb import serialize_item

        with plan_context(plan=plan) as context:
            entity = context.entities[0]
            relation = context.source.relation(entity)
            source_rows = next(
                iter(context.source.pages(relation, after=None, upper=None, page_size=min(SEED002_ROWS, rows)))
            )

            def loop():
                for row in source_rows:
                    client.put_item(TableName=table, Item=serialize_item(entity.transform(row)))

            return len(source_rows) / timed(loop)

    def product(segments: int):
        def measure() -> float:
            written = 0

            def go():
                nonlocal written
                written = _migrate(plan, segments)

            seconds = timed(go)
            if written != rows:
                raise RuntimeError(f"migrated {written} of {rows} rows")
            return rows / seconds

        return measure

    measures = {"raw": raw, "seed002": seed002, **{f"seg{n}": product(n) for n in (1, 2, 4)}}
    samples: dict[str, list[float]] = {name: [] for name in measures}
    samples["seed002"].append(seed002())
    for _ in range(runs):
        for name in ("seg1", "raw", "seg2", "seg4"):
            samples[name].append(measures[name]())
    for _ in range(min(runs, 3) - 1):
        samples["seed002"].append(seed002())
    profiled(f"{NAME}-seg1", measures["seg1"])
    import statistics

    median = {name: statistics.median(values) for name, values in samples.items()}
    results = []
    for segments in (1, 2, 4):
        a = median[f"seg{segments}"]
        results.append(
            Result(
                bench=NAME,
                metric="items/s",
                a_label=f"engine, {segments} segment(s), {rows} rows",
                a=a,
                b_label="raw BatchWriteItem loop (pre-built)",
                b=median["raw"],
                unit="items/s",
                target="≥ 0.85×",
                endpoint="moto-gunicorn",
            )
        )
    best = max(median[f"seg{n}"] for n in (1, 2, 4))
    results.append(
        Result(
            bench=NAME,
            metric="items/s",
            a_label="engine, best of 1/2/4 segments",
            a=best,
            b_label=f"seed 002 loop (PutItem per row, {min(SEED002_ROWS, rows)} rows)",
            b=median["seed002"],
            unit="items/s",
            target="≥ 10×",
            endpoint="moto-gunicorn",
        )
    )
    return results


def _validation(url: str, plan, rows: int, runs: int) -> Result:
    import statistics

    from migration_app.services.validation import plan_validate

    client = raw_client(url)
    table = plan.target_tables[0]
    from migration_app.services.mapping import target_name

    table = target_name(table)

    def product() -> float:
        report = None

        def go():
            nonlocal report
            report = plan_validate(plan=plan, total_segments=4)

        seconds = timed(go)
        if not report.clean or report.expected != rows:
            raise RuntimeError(f"validation not clean: {report.summary()}")
        return rows / seconds

    def raw() -> float:
        def segment(number: int) -> int:
            count, start = 0, None
            while True:
                params = {"TableName": table, "Segment": number, "TotalSegments": 4}
                if start:
                    params["ExclusiveStartKey"] = start
                page = client.scan(**params)
                count += len(page["Items"])
                start = page.get("LastEvaluatedKey")
                if not start:
                    return count

        count = 0

        def go():
            nonlocal count
            with ThreadPoolExecutor(max_workers=4) as pool:
                count = sum(pool.map(segment, range(4)))

        seconds = timed(go)
        return count / seconds

    product(), raw()
    a_runs, b_runs = [], []
    for _ in range(runs):
        a_runs.append(product())
        b_runs.append(raw())
    profiled("validation", product)
    return Result(
        bench="validation",
        metric="items/s",
        a_label=f"plan_validate (full, 4 segments), {rows} rows",
        a=statistics.median(a_runs),
        b_label="raw parallel Scan (4 segments)",
        b=statistics.median(b_runs),
        unit="items/s",
        target="≥ 0.8×",
        endpoint="moto-gunicorn",
    )


def _memory(url: str, smoke: bool, big: bool) -> Result:
    small = 300 if smoke else 10_000
    large = small * (100 if big else 2 if smoke else 10)
    peaks = {}
    for rows in (small, large):
        source_table(rows)
        with endpoint("stub", env={"BENCH_STUB_DISCARD": "1"}) as sink:
            env = {**os.environ, "BENCH_ENDPOINT": url, "BENCH_SINK": sink}
            output = subprocess.run(
                [sys.executable, "-m", "bench.migration", "--rss", str(rows)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        peaks[rows] = json.loads(output.strip().splitlines()[-1])["max_rss_mb"]
    return Result(
        bench="migration_memory",
        metric="peak RSS MB",
        a_label=f"migrating {large} rows",
        a=peaks[large],
        b_label=f"migrating {small} rows",
        b=peaks[small],
        unit="MB",
        target="≤ 1.2×",
        endpoint="moto-gunicorn",
    )


def _peak_rss_mb() -> float:
    """VmHWM of this process. Not ``ru_maxrss``: Linux keeps that high-water mark across fork + exec, so
    a child would report its parent's peak (the first version of this benchmark did)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_main(rows: int) -> None:
    from django.conf import settings

    from lizzy.dynamodb import reset_client

    _setup(os.environ["BENCH_ENDPOINT"])
    plan = _plan(source_table(rows))  # tables on moto; the rows then go to a stub that keeps nothing
    settings.AWS_ENDPOINT_URL_DYNAMODB = os.environ["BENCH_SINK"]
    reset_client()
    written = _migrate(plan, 1)
    if written != rows:
        raise RuntimeError(f"migrated {written} of {rows} rows")
    print(json.dumps({"rows": rows, "max_rss_mb": _peak_rss_mb()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss", type=int, required=True, help="migrate this many rows and print the peak RSS")
    _rss_main(parser.parse_args().rss)
