"""A real Celery worker SIGKILLed mid-backfill and mid-flush, on a Redis broker.

Mid-backfill: ``backfill_segment_task`` runs with acks_late + reject_on_worker_lost, so the message
stays unacknowledged; the broker hands it to the next worker once the visibility timeout has passed
(3 s here, LIZZY_VISIBILITY_TIMEOUT), the segment resumes from its checkpoint and validation is clean.
Mid-flush: the flush task is acked early on purpose (the beat re-sends it every interval); the dirty
marks survive the kill, the dead flusher's lock expires, and the next beat's flush writes everything.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

from lizzy.dynamodb import dynamodb_batch_get, reset_client
from lizzy.redis import reset_redis
from lizzy.tables import SESSIONS, tables_ensure
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.write_behind import flush_backlog
from tests.figures import record_figure
from tests.fixtures.redis_server import RedisServer
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT = 3


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A redis-server of this module's own (broker and session Redis) and a migrated control database."""
    server = RedisServer()
    server.start()
    control = tmp_path_factory.mktemp("celery") / "control.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.local",
        "DATABASE_URL": f"sqlite:///{control}",
        "CELERY_BROKER_URL": server.url,
        "LIZZY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "LIZZY_MIGRATION_LEASE_SECONDS": "3",  # the killed worker's unit lease, taken over after it expires
        "LIZZY_BROKER_RESTORE_INTERVAL": "1",
        "LIZZY_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    yield server, env, control
    server.kill()


def things_source(path: Path, count: int) -> str:
    with sqlite3.connect(path) as db:
        db.executescript(THINGS_DDL)
        for row in things_rows(count):
            db.execute("INSERT INTO things VALUES (:id, :name, :price, :active, :updated_at, :tags)", row)
    return f"sqlite:///{path}"


class Worker:
    def __init__(self, env: dict, queues: str, marker: Path | None = None, block_at: int = 0) -> None:
        env = dict(env)
        if marker:
            env |= {"LIZZY_TEST_BLOCK_MARKER": str(marker), "LIZZY_TEST_BLOCK_AT": str(block_at)}
        self.marker = marker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.killable_worker", queues],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # a full, unread pipe would block the worker
        )

    def wait_blocked(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert self.process.poll() is None, f"the worker exited with {self.process.returncode}"
            assert time.monotonic() < deadline, "the worker never reached the blocking call"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_backfill_is_redelivered_and_validates_clean(broker, tmp_path, dynamodb_server_url):
    server, env, control = broker
    queue = f"migrations-{uuid.uuid4().hex[:6]}"
    table = f"Things-{uuid.uuid4().hex[:8]}"
    plan = f"killed-{uuid.uuid4().hex[:6]}"
    env = {**env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server_url, "LIZZY_MIGRATION_QUEUE": queue}
    env["LIZZY_BACKUP_DIR"] = str(tmp_path / "backups")
    source = things_source(tmp_path / "source.sqlite3", 300)
    mapping = tmp_path / "things.json"
    mapping.write_text(json.dumps(things_mapping(table=table)))
    marker = tmp_path / "blocked"

    # given: a worker that will hang in its fifth BatchWriteItem (chunks of 50 rows, 2 calls each)
    first = Worker(env, f"{queue},celery", marker, block_at=5)
    try:
        command = ["manage.py", "migrate_to_dynamodb", "--mapping", str(mapping), "--source", source]
        # The visibility timeout runs from delivery, which comes after this point and before the kill,
        # so redelivery is at least VISIBILITY_TIMEOUT after queueing but may be sooner after the kill.
        queued_at = time.monotonic()
        queued = subprocess.run(  # noqa: S603
            [sys.executable, *command, "--plan", plan, "--async", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert queued.returncode == 0, queued.stderr[-2000:]
        first.wait_blocked()
        # when: SIGKILL mid-segment
        first.kill()
        killed_at = time.monotonic()
    finally:
        first.kill()
    with sqlite3.connect(control) as db:
        checkpoint = db.execute(
            "SELECT s.rows_read, s.done FROM migration_app_segment s JOIN migration_app_migrationrun r"
            " ON s.run_id = r.id JOIN migration_app_migrationplan p ON r.plan_id = p.id WHERE p.name = ?",
            (plan,),
        ).fetchall()
    assert len(checkpoint) == 1
    assert checkpoint[0][0] < 300
    assert checkpoint[0][1] == 0

    # then: a new worker gets the unacknowledged message back after the visibility timeout and finishes
    second = Worker(env, f"{queue},celery")
    try:

        def finished():
            with sqlite3.connect(control) as db:
                return db.execute(
                    "SELECT s.attempts, s.done, s.rows_read FROM migration_app_segment s"
                    " JOIN migration_app_migrationrun r ON s.run_id = r.id"
                    " JOIN migration_app_migrationplan p ON r.plan_id = p.id"
                    " WHERE p.name = ? AND s.done = 1",
                    (plan,),
                ).fetchall()

        done = _wait_for(finished, 60, "the redelivered segment to finish")
        finished_at = time.monotonic()
        redelivered_after = finished_at - queued_at
        finished_after_kill = finished_at - killed_at
    finally:
        second.kill()
    validated = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "validate_migration", plan, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout[-1000:] + validated.stderr[-2000:]
    report = json.loads(validated.stdout.strip().splitlines()[-1])
    record_figure(
        "faults/celery-worker-killed-mid-backfill",
        rows=300,
        checkpoint_rows=100,
        attempts=done[0][0],
        rows_read=done[0][2],
        finished_after_queue_s=round(redelivered_after, 1),
        finished_after_kill_s=round(finished_after_kill, 1),
        visibility_timeout_s=VISIBILITY_TIMEOUT,
        validation=report,
    )
    assert done == [(2, 1, 300)]
    assert redelivered_after >= VISIBILITY_TIMEOUT
    assert report["validation"]["clean"] is True
    assert report["validation"]["found"] == report["validation"]["expected"] == 300


def test_worker_killed_mid_flush_loses_nothing(broker, tmp_path, dynamodb_server_url, settings, monkeypatch):
    server, env, _control = broker
    suffix = f"t{uuid.uuid4().hex[:10]}"
    prefix = f"lizzy:{suffix}:"
    env = {
        **env,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server_url,
        "LIZZY_ENV": suffix,
        "LIZZY_SESSION_REDIS_URL": server.url,
        "LIZZY_REDIS_PREFIX": prefix,
        "LIZZY_FLUSH_LOCK_SECONDS": "3",
    }
    queue = f"flush-{uuid.uuid4().hex[:6]}"
    # given: 60 sessions acknowledged in Redis only (write-behind), seen from this test process
    settings.AWS_ENDPOINT_URL_DYNAMODB = dynamodb_server_url
    settings.LIZZY_ENV = suffix
    settings.LIZZY_SESSION_REDIS_URL = server.url
    settings.LIZZY_REDIS_PREFIX = prefix
    settings.LIZZY_SESSION_STORE_MODE = "cached_write_behind"
    reset_client()
    reset_redis()
    tables_ensure(specs=[SESSIONS])
    phones = [f"+1206557{n:04d}" for n in range(60)]
    expected = {}
    for phone in phones:
        first = session_save(session=session_new(phone=phone), expected_version=None)
        expected[phone] = session_save(session=first, expected_version=first.version).version
    assert flush_backlog().size == 60
    beat = Celery(broker=server.url, set_as_current=False)  # the product's app stays the current one

    def tick() -> None:
        beat.send_task("sessions_app.tasks.sessions_flush_task", queue=queue)

    # when: the worker is SIGKILLed inside the flush's 30th conditional PutItem
    marker = tmp_path / "blocked-flush"
    first_worker = Worker({**env, "LIZZY_TEST_BLOCK_OP": "PutItem"}, queue, marker, block_at=30)
    try:
        tick()
        first_worker.wait_blocked()
        first_worker.kill()
    finally:
        first_worker.kill()
    left_after_kill = flush_backlog().size

    # then: the beat keeps ticking; once the dead flusher's lock expires a flush writes everything
    second_worker = Worker({**env}, queue)
    try:
        ticks = 0

        def drained() -> bool:
            nonlocal ticks
            ticks += 1
            tick()
            return flush_backlog().size == 0

        _wait_for(drained, 60, "the backlog to drain")
    finally:
        second_worker.kill()
        beat.close()
    items = dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": p} for p in phones], consistent=True)
    stored = {item["phone"]: int(item["version"]) for item in items}
    lost = sum(1 for phone in phones if stored.get(phone) != expected[phone])
    record_figure(
        "faults/celery-worker-killed-mid-flush",
        sessions=60,
        dirty_after_kill=left_after_kill,
        beat_ticks_until_drained=ticks,
        lost=lost,
    )
    assert 0 < left_after_kill <= 60
    assert lost == 0


def test_async_unit_failure_on_a_real_worker_ends_the_run_failed(broker, tmp_path, dynamodb_server_url):
    # given: a source whose row 150 cannot become a DynamoDB item (over 400 KB), dispatched with --async
    _server, env, control = broker
    queue = f"migrations-{uuid.uuid4().hex[:6]}"
    table = f"Things-{uuid.uuid4().hex[:8]}"
    plan = f"failing-{uuid.uuid4().hex[:6]}"
    env = {**env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server_url, "LIZZY_MIGRATION_QUEUE": queue}
    env["LIZZY_BACKUP_DIR"] = str(tmp_path / "backups")
    source_path = tmp_path / "source.sqlite3"
    source = things_source(source_path, 300)
    with sqlite3.connect(source_path) as db:
        db.execute("UPDATE things SET name = ? WHERE id = 150", ("x" * 420_000,))
    mapping = tmp_path / "things.json"
    mapping.write_text(json.dumps(things_mapping(table=table)))
    worker = Worker(env, f"{queue},celery")
    try:
        queued = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "migrate_to_dynamodb", "--mapping", str(mapping), "--source", source]
            + ["--plan", plan, "--async", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert queued.returncode == 0, queued.stderr[-2000:]

        # when: the worker runs the unit
        def failed():
            with sqlite3.connect(control) as db:
                return db.execute(
                    "SELECT r.status, r.last_error, r.finished_at FROM migration_app_migrationrun r"
                    " JOIN migration_app_migrationplan p ON r.plan_id = p.id WHERE p.name = ? AND r.status = ?",
                    (plan, "failed"),
                ).fetchall()

        # then: the run ends failed (not running forever), naming plan, table, unit and source key
        ((status, error, finished_at),) = _wait_for(failed, 60, "the run to end failed")
    finally:
        worker.kill()
    assert status == "failed"
    assert finished_at
    assert f"plan {plan}" in error
    assert "main.things" in error
    assert "unit things:things[0]" in error
    assert "{'id': 150}" in error
