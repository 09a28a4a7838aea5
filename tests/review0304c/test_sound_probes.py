"""Probes of da8ca2d that hold (they pass): kept as regression guards."""

from __future__ import annotations

import threading
import time

import pytest

from lizzy.dynamodb import BatchWriteIncomplete, BatchWriter, batch, batch_write_chunks
from lizzy.tables import SESSIONS
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review0304c.hooks import Faults
from tests.review_chain.helpers import one_entity_run


@pytest.fixture
def fast(monkeypatch, settings):
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = 0.01
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_refused_page_with_stingy_chunk_and_refused_put_counted_once(
    sqlite_source, settings, dynamodb, fast, concurrency
):
    """A page whose chunk from THING#1 lands one item a call (5 left-over answers, across the first batch and
    the rewrite's batch) while the THING#30 chunk is refused each time; THING#7's PutItem refused (bad row):
    every reported write unit and left-over answer counted exactly once (``_spent_told`` + ``on_chunk``)."""
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    run.max_bad_rows = 10
    run.save(update_fields=["max_bad_rows"])
    unit = run.segments.get()
    hook = Faults(refuse_pk="THING#30", refuse_put="THING#7", stingy_pk="THING#1", stingy=5)
    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)
    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert unit.rows_quarantined == 1
    assert unit.unprocessed_retries == hook.unprocessed == 5
    assert unit.write_units == pytest.approx(sum(hook.units))
    assert MigrationRun.objects.get(pk=run.pk).write_units == pytest.approx(sum(hook.units))


def items(count, prefix="+1206555"):
    return [{"phone": f"{prefix}{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_another_callers_stop_does_not_fail_a_legitimate_chunk(dynamodb):
    """One caller's stop set while its chunk waits in backoff: the other caller's chunk queued behind it (its
    own event, and one with no event) is sent and lands."""
    writer, mine, theirs = BatchWriter(concurrency=1), threading.Event(), threading.Event()

    def hook(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ((table, requests),) = params["RequestItems"].items()
        if requests[0]["PutRequest"]["Item"]["phone"]["S"].startswith("+1503"):
            return {"UnprocessedItems": {table: requests}}
        return send(params)

    batch_backoff = batch.backoff_delay
    batch.backoff_delay = lambda _attempt: 5.0
    try:
        with fault_injection(hook):
            stopped = writer.submit(
                batch_write_chunks(table=SESSIONS.name, items=items(5, "+1503555"))[0], table=SESSIONS.name, stop=mine
            )
            ok = writer.submit(
                batch_write_chunks(table=SESSIONS.name, items=items(5))[0], table=SESSIONS.name, stop=theirs
            )
            plain = writer.submit(
                batch_write_chunks(table=SESSIONS.name, items=items(5, "+1312555"))[0], table=SESSIONS.name
            )
            time.sleep(0.2)
            started = time.monotonic()
            mine.set()
            with pytest.raises(BatchWriteIncomplete):
                stopped.result(timeout=5)
            assert time.monotonic() - started < 1.0
            assert ok.result(timeout=5).written == 5
            assert plain.result(timeout=5).written == 5
    finally:
        batch.backoff_delay = batch_backoff
        writer.close()


def test_spent_stays_out_of_the_errors_details():
    """``spent`` is an attribute, not in ``details`` (an API error body, a run's last_error): nothing leaks."""
    from lizzy.dynamodb.batch import BatchWriteResult

    exc = BatchWriteIncomplete("x", unwritten=1, written=2, spent=BatchWriteResult(calls=3, write_units=4.0))
    assert exc.details == {"unwritten": 1, "written": 2}
    assert batch.spent_of(exc).write_units == 4.0
    assert batch.spent_of(ValueError()) is None
