"""Attacks on bb512ec (kept Celery connections) that found the promise kept."""

from __future__ import annotations

import psycopg
import pytest

from tests.review0304d.workers import lines, probe_worker


def test_backend_terminated_between_tasks_the_next_task_reconnects(tmp_path, postgres_url):
    """CONN_HEALTH_CHECKS: pg_terminate_backend of the kept connection; the next task gets a new one."""
    with probe_worker(tmp_path, postgres_url) as (client, probes, _):
        client.send_task("r0304d.probe")
        (first,) = lines(probes, 1)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [first["backend"]])
        client.send_task("r0304d.probe")
        _, second = lines(probes, 2)
    assert second["process"] == first["process"]
    assert second["backend"] != first["backend"]


def test_a_caught_dataerror_in_a_raw_transaction_does_not_break_the_next_task(tmp_path, postgres_url):
    """The session is INERROR; the health check's SELECT 1 fails there, so the next task reconnects."""
    with probe_worker(tmp_path, postgres_url) as (client, probes, _):
        client.send_task("r0304d.probe")
        lines(probes, 1)
        client.send_task("r0304d.aborted_and_return")
        lines(probes, 2)
        client.send_task("r0304d.probe")
        first, _, after = lines(probes, 3)
    assert after["task"] == "probe"
    assert after["backend"] != first["backend"]
    assert not after["in_transaction"]


def test_a_task_retried_closes_its_connection(tmp_path, postgres_url):
    """state RETRY is not SUCCESS: the retry's run opens a new connection."""
    with probe_worker(tmp_path, postgres_url) as (client, probes, _):
        client.send_task("r0304d.retry")
        first, second = lines(probes, 2)
    assert (first["retries"], second["retries"]) == (0, 1)
    assert second["backend"] != first["backend"]


def test_database_refusing_at_start_does_not_stop_the_worker(tmp_path):
    """Connection refused at the warm-up: logged, the pool process starts and runs tasks."""
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there: refused at once
    with probe_worker(tmp_path, f"postgres://postgres@127.0.0.1:{port}/x") as (client, probes, log):
        client.send_task("r0304d.nodb")
        (ran,) = lines(probes, 1, timeout=30)
    assert ran["task"] == "nodb"


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_other_pools_keep_across_success_and_drop_after_failure_in_their_own_thread(tmp_path, postgres_url, pool):
    """Solo (warm-up in worker_process_init, sent by the solo pool in its one thread) and threads (no warm-up:
    no worker_process_init, so none opened in the wrong thread): kept across successes, new after a RETRY."""
    with probe_worker(tmp_path, postgres_url, LIZZY_TEST_POOL=pool) as (client, probes, _):
        for count, name in enumerate(("r0304d.probe", "r0304d.probe", "r0304d.retry"), start=1):
            client.send_task(name)
            lines(probes, count if count < 3 else 4)
        client.send_task("r0304d.probe")
        one, two, r0, r1, after = lines(probes, 5)
    assert one["connected"] is (pool == "solo")
    assert two["connected"]
    assert two["backend"] == one["backend"] == r0["backend"]
    assert r1["backend"] != r0["backend"]
    assert after["backend"] == r1["backend"]
