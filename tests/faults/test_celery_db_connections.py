"""A real prefork Celery worker keeps its database connection across tasks that succeed, opens it when its
pool process starts, and drops it after a task that failed (lizzy.celery: Celery's Django fixup would close
it before and after every task: one connection a task).
"""

from __future__ import annotations

import pytest

from tests.fixtures.celery_probe import lines, probe_worker


@pytest.fixture
def worker(tmp_path, postgres_url):
    database = postgres_url.rsplit("/", 1)[0] + "/postgres"  # a database every server has
    with probe_worker(tmp_path, database, module="tests.faults.db_probe_worker", queue="db-probe") as (
        client,
        probes,
        _,
    ):
        yield client, probes


def test_a_pool_process_keeps_its_connection_across_tasks_and_drops_it_after_a_failure(worker):
    client, probes = worker
    # given a prefork worker with one pool process; when three tasks run one after another, the second failing
    for name, count in (("tests.db_probe", 1), ("tests.db_probe", 2), ("tests.db_boom", 3), ("tests.db_probe", 4)):
        client.send_task(name)
        lines(probes, count)
    first, second, failed, after = lines(probes, 4)
    assert len({probe["process"] for probe in (first, second, failed, after)}) == 1, "one pool process ran them all"
    # then the first task found the connection its process opened at start, the next one the same connection
    assert first["connected"], "the pool process did not open its connection when it started"
    assert second["connected"]
    assert second["backend"] == first["backend"] == failed["backend"], "a task that succeeded did not keep it"
    # and the task after the failure opened a new one
    assert not after["connected"]
    assert after["backend"] != failed["backend"]
