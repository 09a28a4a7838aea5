"""Start tests.review0304d.probe_worker against a broker of its own and read what its probes wrote."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

from tests.fixtures.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "r0304d-probe"


@contextlib.contextmanager
def probe_worker(tmp_path: Path, database_url: str, **extra_env: str):
    server = RedisServer()
    server.start()
    probes = tmp_path / "probes.jsonl"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.local",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": server.url,
        "LIZZY_TEST_PROBE_FILE": str(probes),
        "LIZZY_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    env.pop("REDIS_URL", None)
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.review0304d.probe_worker", QUEUE],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    client = Celery("probe-client", broker=server.url, set_as_current=False)  # the product's app stays current
    client.conf.task_default_queue = QUEUE
    try:
        yield client, probes, log
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
