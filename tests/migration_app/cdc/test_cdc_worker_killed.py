"""The CDC worker SIGKILLed mid-stream while the source keeps changing: nothing lost, no key written
out of order. A restart within the dead worker's lease is refused and retried (the fence itself is tested
in process: test_cdc_end_to_end.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from lizzy.dynamodb import dynamodb_scan_segment
from migration_app.cdc.streams import cdc_stream_active
from migration_app.models import CdcStream, Phase
from migration_app.services.phases import plan_advance
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from tests.migration_app.cdc.workload import WriteRecorder, Writers, expected_items, mapping, setup_source

ROOT = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2

pytestmark = pytest.mark.integration


def _env(dynamodb_url: str) -> dict[str, str]:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "LIZZY_CDC_LEASE_SECONDS": str(LEASE_SECONDS),
        "LIZZY_CDC_POLL_SECONDS": "0.05",
        "LIZZY_CDC_BATCH_CHANGES": "40",  # many small steps: a kill lands between write and advance often
    }


def _start(plan: str, stream_id: int, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen, int]:
    """Start a worker and wait until it holds the lease (its token is the stream's); a start refused because
    the killed worker's lease has not expired yet is retried."""
    refused = 0
    deadline = time.monotonic() + 60
    while True:
        token = CdcStream.objects.get(pk=stream_id).lease_token
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "migration_cdc", plan, *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while worker.poll() is None and CdcStream.objects.get(pk=stream_id).lease_token == token:
            assert time.monotonic() < deadline, "the worker never took the lease"
            time.sleep(0.02)
        if worker.poll() is None or worker.returncode == 0:
            return worker, refused
        _out, err = worker.communicate()
        assert "holds the lease" in err, err[-2000:]
        refused += 1
        time.sleep(0.2)


def test_a_worker_killed_mid_stream_resumes_with_nothing_lost_and_nothing_out_of_order(
    transactional_db, live_dynamodb, cdc_source, settings
):
    if connection.vendor != "postgresql":  # a laptop without DATABASE_URL: Django's test database is in memory
        pytest.skip("the worker subprocess needs Django's database on a server (DATABASE_URL=postgres://...)")
    # given a CDC plan whose backfill is done, and three connections writing at random
    setup_source(cdc_source, rows=100)
    table = f"Stock-{uuid.uuid4().hex[:8]}"
    plan = plan_save(name="killed", source_url=cdc_source, mapping=mapping(table))
    plan.cdc = True
    plan.save(update_fields=["cdc"])
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    with plan_context(plan=plan) as context:
        assert run_execute(run=run_create(context=context), context=context).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    stream = cdc_stream_active(plan=plan)
    env = _env(live_dynamodb)
    rng = random.Random(15)
    with WriteRecorder() as recorder:
        writers = Writers(cdc_source, connections=3).start()
        try:
            # when the worker is SIGKILLed while it is applying (a subprocess start costs seconds: once)
            for _ in range(1):
                recorder.next_incarnation()
                before = CdcStream.objects.get(pk=stream.pk).transactions_applied
                worker, _refused = _start(plan.name, stream.pk, env)
                deadline = time.monotonic() + 30
                while CdcStream.objects.get(pk=stream.pk).transactions_applied < before + 10:
                    assert worker.poll() is None, worker.communicate()[1][-2000:]
                    assert time.monotonic() < deadline, "the worker applied nothing"
                    time.sleep(0.02)
                time.sleep(rng.random() * 0.2)
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        finally:
            writers.stop()
        # then a new worker, once the lease expired, catches up from the last confirmed position
        recorder.next_incarnation()
        final, _refused = _start(plan.name, stream.pk, env, "--until-idle")
        assert final.wait(timeout=60) == 0, final.communicate()[1][-2000:]

    expected = expected_items(cdc_source)
    found = {(item["PK"], item["SK"]): item for item in dynamodb_scan_segment(table=table, consistent=True)}
    assert sorted(found) == sorted(expected), "0 lost, 0 extra"
    assert [key for key in expected if found[key] != expected[key]] == []
    assert recorder.out_of_order(table=table, incarnations={1, 2}) == []
    assert CdcStream.objects.get(pk=stream.pk).transactions_applied > 20
