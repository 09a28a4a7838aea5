"""A task that succeeds but leaves its session inside a transaction hands it to every later task of its process.

Promise broken (lizzy.celery.db_connections_before_task / after_task): "As at a request's start: connections
... unusable after an error are closed, and the next use of a kept one checks its health first" and the
commit's "a pool process ... keeps it across tasks that succeed". The health check (SELECT 1) passes inside an
open transaction and Django still believes the connection is in autocommit, so the next tasks' autocommit
writes go into that transaction: they report success and are visible to nobody; they are lost when the
connection is eventually closed (CONN_MAX_AGE, a failed task). Before bb512ec the fixup closed the connection
after each task, which rolled back only the offending task's own work.

Measured: after begin_and_return, write('after') ran on the same backend and reported success, but another
connection sees 0 of 1 row 'after'.

Suggested fix: in db_connections_after_task (and before_task), close a kept connection whose server-side
transaction status is not idle: ``conn.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE``
(when not conn.in_atomic_block), as Django's own autocommit check would if it looked at the server.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.review0304d.workers import lines, probe_worker


@pytest.fixture
def table(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS r0304d_rows")
        conn.execute("CREATE TABLE r0304d_rows (name text)")
    return postgres_url


def test_a_later_tasks_autocommit_write_is_committed(tmp_path, table):
    with probe_worker(tmp_path, table) as (client, probes, _):
        client.send_task("r0304d.begin_and_return")
        lines(probes, 1)
        client.send_task("r0304d.write", args=["after"])
        leaked, wrote = lines(probes, 2)
        # (since the fix: the connection left in a transaction was dropped after its task, rolling it back)
        assert wrote["backend"] != leaked["backend"], "the connection left in a transaction was kept"
        time.sleep(0.5)
        with psycopg.connect(table, autocommit=True) as conn:
            (seen,) = conn.execute("SELECT count(*) FROM r0304d_rows WHERE name = 'after'").fetchone()
    assert seen == 1, f"the task reported its INSERT done, but it is uncommitted: {seen} of 1 row visible"
