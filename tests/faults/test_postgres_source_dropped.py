"""The PostgreSQL source connection is dropped mid-stream (pg_terminate_backend) during a backfill.

The backend serving the source is terminated between two pages, while the backfill is writing: the run
must carry on from its checkpoint (no row read twice into a second write, none skipped) and validate clean.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.figures import record_figure
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import things_mapping

ROWS = 600
PG_DDL = """
CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL, price numeric(10, 2), active boolean,
  updated_at timestamptz, tags jsonb);
INSERT INTO things SELECT n, 'thing ' || n, n + 0.5, n % 2 = 1, '2025-01-01T00:00:00+00:00', '["a", "b"]'
  FROM generate_series(1, {rows}) AS n;
"""


@pytest.fixture
def postgres_things(postgres_url: str):
    """A source database ``lizzy_i7_src_<random>`` with 600 things, dropped afterwards."""
    name = f"lizzy_i7_src_{uuid.uuid4().hex[:8]}"
    admin_url = postgres_url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as source:
        source.execute(PG_DDL.format(rows=ROWS))
    yield url, name, admin_url
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_source_connection_dropped_mid_stream_resumes_from_the_checkpoint(postgres_things, db, dynamodb, settings):
    url, name, admin_url = postgres_things
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    table = f"Things-{uuid.uuid4().hex[:8]}"
    mapping = things_mapping(table=table)
    mapping["rules"][0]["object-locator"]["schema-name"] = "public"
    plan = plan_save(name="pg-dropped", source_url=url, mapping=mapping)
    terminated = []
    calls = {"n": 0}

    def drop_source_connection(operation, params, send):
        # Only this run's writes count: the hook sees every thread's calls, and a thread an earlier test left
        # (a writer draining, a flush) may send one of its own (terminated == [0, 1] once under the full suite).
        if operation == "BatchWriteItem" and table in params["RequestItems"]:
            calls["n"] += 1
            if calls["n"] in (4, 9):  # two drops: during the 3rd and the 5th page's write (2 calls a page)
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        [name],
                    ).fetchall()
                terminated.append(len(rows))
        return send(params)

    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
        with fault_injection(drop_source_connection):
            run = run_execute(run=run, context=context)
    segment = run.segments.get()
    report = plan_validate(plan=plan)
    record_figure(
        "faults/postgres-source-dropped",
        rows=ROWS,
        connections_terminated=sum(terminated),
        run_status=run.status,
        rows_read=run.rows_read,
        items_written=run.items_written,
        segment_attempts=segment.attempts,
        clean=report.clean,
    )
    assert terminated == [1, 1], "the source connection was not there to be dropped"
    assert run.last_error == ""
    assert run.status == "succeeded"
    assert run.rows_read == ROWS  # each row read once into the table: nothing skipped, nothing twice
    assert report.clean
