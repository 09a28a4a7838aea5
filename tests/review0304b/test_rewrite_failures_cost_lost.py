"""Review of 2d08a17: in a page rewritten item by item at concurrency > 1, a chunk of the rewrite's batch that
ends ``BatchWriteIncomplete`` loses its calls' cost when another chunk of the same batch is refused.

Promise broken (commit claim 3 / docs/MIGRATIONS.md): "Write units and retries count every call the unit sent
since its last checkpoint ... or item by item after a refused chunk, costs both writes", and
``_batch_write_concurrently``'s own comment: "what the chunks that failed consumed (those that landed reached
``collect``)".

``_batch_write_concurrently`` sums its ``failures``' ``write_units``/retries only into the
``BatchWriteIncomplete`` it raises when no other error occurred; when a chunk is refused (ValidationException)
that error is raised instead, ``_one_by_one`` catches it and goes PutItem by PutItem, and the failed chunks'
10 calls (write units and unprocessed retries) are never seen by ``_UnitPipeline.cost``.

Suggested fix: attach the failures' summed cost to whatever error ``_batch_write_concurrently`` raises (or
report each failed chunk's ``BatchWriteIncomplete`` to ``on_chunk``-like cost callback), and have
``_one_by_one``'s caller count it before falling back to PutItem.
"""

from __future__ import annotations

import threading

import pytest

from lizzy.dynamodb import batch
from lizzy.dynamodb.capacity import write_units_of
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run


class Hook:
    """BatchWriteItem with THING#30: refused (ValidationException) every time. The chunk starting at THING#1:
    its first call as sent, its next ``stingy`` calls accept one item each. Records what DynamoDB reported."""

    def __init__(self, stingy):
        self.stingy, self.first_seen = stingy, False
        self.units: list[float] = []
        self.unprocessed = 0
        self.lock = threading.Lock()

    def __call__(self, operation, params, send):
        if operation not in ("BatchWriteItem", "PutItem"):
            return send(params)
        unprocessed = []
        if operation == "BatchWriteItem":
            ((table, requests),) = params["RequestItems"].items()
            pks = [r["PutRequest"]["Item"]["PK"]["S"] for r in requests]
            if "THING#30" in pks:
                raise client_error("ValidationException", "One or more parameter values were invalid", operation)
            with self.lock:
                stingy = "THING#1" in pks and self.first_seen and self.stingy > 0
                if "THING#1" in pks:
                    self.first_seen = True
                if stingy:
                    self.stingy -= 1
            if stingy and len(requests) > 1:
                params = {**params, "RequestItems": {table: requests[-1:]}}
                unprocessed = requests[:-1]
        response = send(params)
        with self.lock:
            self.units.append(write_units_of(operation, response.get("ConsumedCapacity"), table="Things"))
            if unprocessed:
                self.unprocessed += 1
                response = {**response, "UnprocessedItems": {table: unprocessed}}
        return response


@pytest.mark.django_db
def test_a_rewrites_failed_chunk_is_counted_when_another_chunk_is_refused(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given one unit of one 50-row page (2 chunks) at concurrency 4: the chunk with THING#30 is refused by
    # DynamoDB, so the page is rewritten; in the rewrite's batch the chunk from THING#1 lands one item a call
    # for its 10 attempts (BatchWriteIncomplete) while the THING#30 chunk is refused again: then PutItem each
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 50, unit_rows=1000)
    unit = run.segments.get()
    hook = Hook(10)

    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert unit.items_written == 50
    assert hook.unprocessed == 10
    # then the unit's counters hold every call DynamoDB answered
    assert unit.write_units == pytest.approx(sum(hook.units)), (
        f"unit counted {unit.write_units} write units; DynamoDB reported {sum(hook.units)} in {len(hook.units)} calls"
    )
    assert unit.unprocessed_retries == 10, f"unit counted {unit.unprocessed_retries} unprocessed retries of 10"
