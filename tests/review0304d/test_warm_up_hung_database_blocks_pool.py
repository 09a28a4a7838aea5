"""bb512ec's warm-up opens the pool process's database connection inside ``worker_process_init``.

Promise broken (lizzy.celery.db_warm_up): "A pool process opens its database connection when it starts ...
except Exception: # the first task connects (and reports) as it would have". And the brief's "the warm-up must
not kill the worker".

A database that accepts TCP but does not answer (an overloaded server, a failover's half-dead address; no
connect_timeout in DATABASE_URL nor in settings, the default) blocks ensure_connection() in the child's
worker_process_init for good: the child never says UP, the worker runs no task at all, not even one that
touches no database (no task time limit applies: no task is running), and a warm shutdown hangs (>30 s).
Measured: nodb not run in 25 s, the same child pid stuck all along. Before bb512ec (control:
LIZZY_TEST_NO_WARM_UP=1, which only disconnects the warm-up) the same worker ran it in 2.1 s.

Suggested fix: bound the warm-up (a connect_timeout of ~2 s for that call only, under Celery's
worker_proc_alive_timeout of 4 s), or warm up in a daemon thread, and set a connect_timeout in DATABASES
OPTIONS in any case.
"""

from __future__ import annotations

import socket

import pytest

from tests.review0304d.workers import lines, probe_worker


@pytest.fixture
def silent_database():
    """A TCP server that completes the handshake (the kernel's backlog) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"postgres://postgres@127.0.0.1:{server.getsockname()[1]}/lizzy"
    finally:
        server.close()


def test_a_task_that_needs_no_database_runs_while_the_database_does_not_answer(tmp_path, silent_database):
    with probe_worker(tmp_path, silent_database) as (client, probes, log):
        client.send_task("r0304d.nodb")
        try:
            ran = lines(probes, 1, timeout=25)
        except AssertionError:
            ran = []
    assert ran, "no task ran in 25 s: the pool child is stuck in the warm-up's connect (worker_process_init)"
