"""Probes of 7b1561c / 39911c1 that hold (they pass): kept as regression guards."""

from __future__ import annotations

import gc
import threading

import pytest
from django.dispatch import Signal

from lizzy.celery import heap_freeze
from lizzy.dynamodb import ItemTooLarge, dynamodb_batch_write
from lizzy.tables import SESSIONS
from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.dispatch import run_resume
from migration_app.services.runs import run_cancel, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


class Refused(Exception):
    pass


def test_on_chunk_refusing_stops_on_chunk_and_leaves_no_thread(dynamodb):
    seen = []

    def on_chunk(result):
        seen.append(result)
        raise Refused("stop")

    with pytest.raises(Refused):
        dynamodb_batch_write(table=SESSIONS.name, items=items(400), concurrency=4, on_chunk=on_chunk)
    assert len(seen) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("batch-write")]


def test_a_generator_error_still_reports_every_chunk_sent(dynamodb):
    sent = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            sent.append(1)
        return send(params)

    reported = []
    too_big = {"phone": "+19999999999", "blob": "x" * 500_000}
    with fault_injection(hook), pytest.raises(ItemTooLarge):
        dynamodb_batch_write(table=SESSIONS.name, items=[*items(150), too_big], concurrency=2, on_chunk=reported.append)
    assert sent
    assert len(reported) == len(sent)


@pytest.mark.django_db
def test_a_cancelled_run_stopped_after_its_last_checkpoint_is_closed_by_its_resume(
    sqlite_source, settings, dynamodb, monkeypatch
):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 200, unit_rows=1000)
    checkpoint = runs._UnitPipeline._checkpoint

    def checkpoint_then_cancel(self, rows, last_key, outcome):
        checkpoint(self, rows, last_key, outcome)
        if list(last_key) == [200]:
            run_cancel(run=MigrationRun.objects.get(pk=run.pk))

    monkeypatch.setattr(runs._UnitPipeline, "_checkpoint", checkpoint_then_cancel)
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    resumed = run_resume(run=run)
    assert (resumed.status, resumed.items_written, resumed.rows_read) == (RunStatus.SUCCEEDED, 200, 200)
    assert resumed.finished_at is not None
    assert resumed.last_error == ""


def test_a_weak_receiver_of_a_frozen_object_still_goes_when_the_object_does():
    signal = Signal()

    class Receiver:
        def on(self, **_kwargs):
            return "called"

    receiver = Receiver()
    signal.connect(receiver.on)  # weak
    heap_freeze()
    assert signal.send(sender=None)[0][1] == "called"
    del receiver
    assert signal.send(sender=None) == []  # refcounting frees it, frozen or not; its weakref callback ran
    gc.unfreeze()
