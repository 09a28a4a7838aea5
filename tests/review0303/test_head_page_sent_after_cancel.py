"""A run cancelled while the unit taken ahead (``_Chain._start``) writes its first page still gets that unit's
second page handed to DynamoDB: the chain pumps ``CHAIN_HEAD_PAGES`` = 2 pages, and the only check between
the two is the pipeline's page-boundary fencing (``lease_renew``), which looks at the lease and not at the
run's status. The stop is seen only at a checkpoint, and the head's first page is not checkpointed yet (its
chunks queue behind the last ones of the unit before), so ``state.pipeline.stopped`` is False after the pump.

Why it matters: ``run_cancel`` promises "stop after the page in flight", docs/MIGRATIONS.md "A run stopped
while the unit's first page was written stops it there"; here a page read and handed over *after* the cancel
committed is written to the target, and the cancelled run's ``items_written`` does not count it (the table
holds items the run says it did not write).

Not new in this diff: with ``CHAIN_HEAD_PAGES = 1`` (e51b9e6) the same page is handed over after the cancel by
the head's continuation (same root cause, the page boundary checks the lease only); the two head pages make
the stop unseen inside ``_Chain._start`` as well, so its ``stopped`` check after the pump does not catch it.

Fix: make the page-boundary check refuse a stopped run too (``lease_renew`` / the fenced UPDATE with
``run_id__in=_runs_not_in(STOPPED)``, telling a stop from a lost lease as ``_checkpoint`` does, setting
``stopped``), or pump only one head page unless the first page's checkpoint was written.
"""

from __future__ import annotations

import threading
import time

import pytest

from lizzy.dynamodb import BatchWriter
from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_cancel, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


def test_no_page_of_the_unit_taken_ahead_is_handed_over_after_the_run_was_cancelled(sqlite_source, settings, dynamodb):
    # given units of two pages (100 rows, pages of 50), a writer of 4 threads, every call 0.3 s in flight
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=100)
    first = run.segments.get().pk
    cancelled = threading.Event()
    after_cancel: list[str] = []  # PKs of the chunks handed to the writer once the cancel committed
    submit = BatchWriter.submit

    def recorded_submit(self, chunk, *, table, stop=None):
        if cancelled.is_set():
            after_cancel.extend(request["PutRequest"]["Item"]["PK"]["S"] for request in chunk.requests)
        return submit(self, chunk, table=table, stop=stop)

    write = runs._UnitPipeline.write

    def write_then_cancel(self, rows, last_key):
        write(self, rows, last_key)
        if self.lease.segment_id != first and not cancelled.is_set():
            # the unit taken ahead has handed over its first page: the operator cancels the run now
            run_cancel(run=MigrationRun.objects.get(pk=run.pk))
            cancelled.set()

    def slow(operation, params, send):
        if operation == "BatchWriteItem":
            time.sleep(0.3)
        return send(params)

    BatchWriter.submit, runs._UnitPipeline.write = recorded_submit, write_then_cancel
    try:
        with fault_injection(slow):
            segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)
    finally:
        BatchWriter.submit, runs._UnitPipeline.write = submit, write

    # then the run is cancelled and nothing more was handed to DynamoDB after the cancel (it fails: the head's
    # second page, 50 items read after the cancel, is sent)
    run.refresh_from_db()
    assert cancelled.is_set()
    assert run.status == RunStatus.CANCELLED
    assert after_cancel == [], f"{len(after_cancel)} item(s) handed over after the cancel: {after_cancel[:3]}..."
