"""A real prefork Celery worker keeps its database connection across tasks that succeed, opens it when its
pool process starts, and drops it after a task that failed (lizzy.celery: Celery's Django fixup would close
it before and after every task: one connection a task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

from tests.fixtures.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "db-probe"


@pytest.fixture
def worker(tmp_path, postgres_url):
    server = RedisServer()
    server.start()
    probes = tmp_path / "probes.jsonl"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.local",
        "DATABASE_URL": postgres_url.rsplit("/", 1)[0] + "/postgres",  # a database every server has
        "CELERY_BROKER_URL": server.url,
        "LIZZY_TEST_PROBE_FILE": str(probes),
        "LIZZY_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.db_probe_worker", QUEUE],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Celery("probe-client", broker=server.url, set_as_current=False)  # the product's app stays current
    client.conf.task_default_queue = QUEUE
    try:
        yield client, probes
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        server.kill()


def lines(path: Path, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            found = [json.loads(line) for line in path.read_text().splitlines()]
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(
        f"{count} probe(s) expected within {timeout} s, found {path.read_text() if path.exists() else 'none'}"
    )


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
