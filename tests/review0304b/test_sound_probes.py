"""Probes of 2d08a17 that hold (they pass): kept as regression guards."""

from __future__ import annotations

import threading
import time

import pytest

from lizzy.dynamodb import BatchWriteIncomplete, BatchWriter, batch, batch_write_chunks, dynamodb_batch_write
from lizzy.dynamodb.capacity import write_units_of
from lizzy.tables import SESSIONS
from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services import runs
from migration_app.services.runs import run_pause, run_reopen, segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run


def pk_number(request):
    return int(request["PutRequest"]["Item"]["PK"]["S"].split("#")[1])


class Recorder:
    """Every call's reported write units, by unit (PK <= split: the first unit), plus injected faults."""

    def __init__(self, *, throttle_pk=None, throttles=0, stingy_pk=None, stingy=0, split=10**9, on_call=None):
        self.throttle_pk, self.throttles = throttle_pk, throttles
        self.stingy_pk, self.stingy = stingy_pk, stingy
        self.split, self.on_call = split, on_call
        self.units = {0: [], 1: []}
        self.thrown = self.unprocessed = 0
        self.lock = threading.Lock()

    def __call__(self, operation, params, send):
        if operation not in ("BatchWriteItem", "PutItem"):
            return send(params)
        unprocessed = []
        if operation == "BatchWriteItem":
            ((table, requests),) = params["RequestItems"].items()
            pks = {pk_number(r) for r in requests}
            which = 0 if min(pks) <= self.split else 1
            with self.lock:
                throttle = self.throttle_pk in pks and self.throttles > 0
                stingy = self.stingy_pk in pks and self.stingy > 0 and not throttle
                if throttle:
                    self.throttles -= 1
                    self.thrown += 1
                if stingy:
                    self.stingy -= 1
            if throttle:
                raise client_error("ProvisionedThroughputExceededException", "slow down", operation)
            if stingy and len(requests) > 1:
                params = {**params, "RequestItems": {table: requests[-1:]}}
                unprocessed = requests[:-1]
        else:
            which = 0 if int(params["Item"]["PK"]["S"].split("#")[1]) <= self.split else 1
        response = send(params)
        with self.lock:
            self.units[which].append(write_units_of(operation, response.get("ConsumedCapacity"), table="Things"))
            if unprocessed:
                self.unprocessed += 1
                response = {**response, "UnprocessedItems": {table: unprocessed}}
        if self.on_call is not None:
            self.on_call()
        return response

    def total(self):
        return sum(self.units[0]) + sum(self.units[1])


@pytest.fixture
def fast(monkeypatch, settings):
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = 0.01
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_throttle_retries_counted_exactly(sqlite_source, settings, dynamodb, fast, concurrency):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get()
    hook = Recorder(throttle_pk=30, throttles=3, stingy_pk=80, stingy=2)
    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)
    unit.refresh_from_db()
    assert (unit.throttle_retries, unit.unprocessed_retries) == (3, 2)
    assert unit.write_units == pytest.approx(hook.total())
    assert MigrationRun.objects.get(pk=run.pk).throttle_retries == 3


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_happy_path_chain_close_has_nothing_to_count(sqlite_source, settings, dynamodb, fast, concurrency):
    """No extra fenced UPDATE per unit on the happy path: ``_count_cost`` finds the cost empty."""
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=100)
    left: list[bool] = []
    count_cost = runs._UnitPipeline._count_cost

    def recorded(self):
        left.append(bool(self.cost))
        return count_cost(self)

    hook = Recorder()
    runs._UnitPipeline._count_cost = recorded
    try:
        with fault_injection(hook):
            segment_run(segment_id=run.segments.get().pk, on_unit=lambda u: None, chain_seconds=60)
    finally:
        runs._UnitPipeline._count_cost = count_cost
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert len(left) >= 3
    assert not any(left)
    assert run.write_units == pytest.approx(hook.total())


@pytest.mark.django_db
def test_pause_refused_checkpoint_cost_counted_once_across_resume(sqlite_source, settings, dynamodb, fast):
    """Concurrency 1: the run paused during a page's calls; its refused checkpoint's cost is counted by close,
    and the resumed unit's re-send counted again (both were sent): no double, none lost."""
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 150, unit_rows=1000)
    unit = run.segments.get()
    calls = {"n": 0}

    def on_call():
        calls["n"] += 1
        if calls["n"] == 3:  # page 2's first chunk: pause now, its checkpoint is refused
            run_pause(run=MigrationRun.objects.get(pk=run.pk))

    hook = Recorder(on_call=on_call)
    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)
        unit.refresh_from_db()
        assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.PAUSED
        assert unit.rows_read == 50
        assert unit.write_units == pytest.approx(hook.total())
        run_reopen(run=MigrationRun.objects.get(pk=run.pk))
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)
    unit.refresh_from_db()
    assert unit.done
    assert unit.items_written == 150
    assert unit.write_units == pytest.approx(hook.total())
    assert MigrationRun.objects.get(pk=run.pk).write_units == pytest.approx(hook.total())


@pytest.mark.django_db
def test_unit_taken_ahead_dropped_on_a_transient_error_keeps_its_cost(sqlite_source, settings, dynamodb, fast):
    """Concurrency 1: the chain's unit taken ahead fails its first page (BatchWriteIncomplete) inside
    ``_Chain._start``: dropped, its 10 calls counted on it by close; its own task then finishes it."""
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=50)
    first = run.segments.get()
    hook = Recorder(stingy_pk=60, stingy=10, split=50)
    queued: list[Segment] = []
    with fault_injection(hook):
        segment_run(segment_id=first.pk, on_unit=queued.append, chain_seconds=60)
        second = Segment.objects.exclude(pk=first.pk).get(run=run)
        assert not second.done
        assert second.write_units == pytest.approx(sum(hook.units[1]))
        assert second.unprocessed_retries == 10
        segment_run(segment_id=second.pk, on_unit=queued.append, chain_seconds=0)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.done
    assert first.done
    assert first.write_units == pytest.approx(sum(hook.units[0]))
    assert second.write_units == pytest.approx(sum(hook.units[1]))
    assert MigrationRun.objects.get(pk=run.pk).write_units == pytest.approx(hook.total())


def items(count, prefix="+1206555"):
    return [{"phone": f"{prefix}{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_ctrl_c_ends_a_chunks_backoff_at_once(dynamodb, monkeypatch):
    """Ctrl-C (a real SIGINT) while ``_batch_write_concurrently`` waits for a chunk in its 5-s backoff: the
    chunk raises at once and the KeyboardInterrupt is what comes out."""
    import os
    import signal

    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 5.0)

    def hook(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ((table, requests),) = params["RequestItems"].items()
        return {"UnprocessedItems": {table: requests}}

    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    with fault_injection(hook), pytest.raises(KeyboardInterrupt):  # noqa: PT012 - the timer starts inside
        timer.start()
        dynamodb_batch_write(table=SESSIONS.name, items=items(50), concurrency=2)
    timer.join()
    assert time.monotonic() - started < 2.0


def test_a_stopped_chunk_carries_its_calls_cost(dynamodb):
    writer, stop = BatchWriter(concurrency=1), threading.Event()

    def hook(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ((table, requests),) = params["RequestItems"].items()
        send({**params, "RequestItems": {table: requests[-1:]}})
        stop.set()
        return {
            "UnprocessedItems": {table: requests[:-1]},
            "ConsumedCapacity": [{"TableName": table, "CapacityUnits": 1.0}],
        }

    with fault_injection(hook):
        future = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(25))[0], table=SESSIONS.name, stop=stop
        )
        with pytest.raises(BatchWriteIncomplete) as raised:
            future.result(timeout=5)
    writer.close()
    assert (raised.value.written, raised.value.unwritten, raised.value.spent.unprocessed_retries) == (1, 24, 1)
    assert raised.value.spent.write_units == pytest.approx(1.0)


def test_close_cancel_after_a_submission_with_a_dead_weakref_is_harmless(dynamodb):
    writer = BatchWriter(concurrency=1)
    future = writer.submit(
        batch_write_chunks(table=SESSIONS.name, items=items(3))[0], table=SESSIONS.name, stop=threading.Event()
    )
    assert future.result(timeout=5).written == 3
    import gc

    gc.collect()
    writer.close(cancel=True)
