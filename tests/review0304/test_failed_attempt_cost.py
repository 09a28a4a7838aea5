"""Review of 528362e (branch review-0303h, stop 27): a unit retried after ``BatchWriteIncomplete`` lost what
the failed attempt's calls consumed (write units 4.0 against the 17.0 DynamoDB reported). Every call's cost is
now counted by its unit (``_UnitPipeline.cost``), with the next checkpoint or, where none comes, when the unit
closes; a ``BatchWriteIncomplete`` carries its calls' write units and retries.
"""

from __future__ import annotations

import threading

import pytest

from lizzy.dynamodb import batch
from lizzy.dynamodb.capacity import write_units_of
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run


class OneAtATime:
    """BatchWriteItem hook: the chunk carrying ``PK`` is accepted one item a call for its first ``stingy``
    calls (the rest unprocessed), then as sent. Records what DynamoDB reported for every call."""

    def __init__(self, pk, stingy):
        self.pk, self.stingy = pk, stingy
        self.units: list[float] = []
        self.unprocessed = 0
        self.lock = threading.Lock()

    def __call__(self, operation, params, send):
        if operation not in ("BatchWriteItem", "PutItem"):
            return send(params)
        unprocessed = []
        if operation == "BatchWriteItem":
            ((table, requests),) = params["RequestItems"].items()
            with self.lock:
                stingy = self.stingy > 0 and any(r["PutRequest"]["Item"]["PK"]["S"] == self.pk for r in requests)
                if stingy:
                    self.stingy -= 1
            if stingy and len(requests) > 1:
                params = {**params, "RequestItems": {table: requests[-1:]}}  # PK's item stays unprocessed
                unprocessed = requests[:-1]
        response = send(params)
        with self.lock:
            self.units.append(write_units_of(operation, response.get("ConsumedCapacity"), table="Things"))
            if unprocessed:
                self.unprocessed += 1
                response = {**response, "UnprocessedItems": {table: unprocessed}}
        return response


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_failed_attempts_calls_are_counted_when_its_unit_is_retried(
    sqlite_source, settings, dynamodb, monkeypatch, concurrency
):
    # given one unit of 100 rows whose chunk with THING#30 is accepted one item a call for 12 calls: 10
    # attempts (BatchWriteIncomplete, a transient error: the unit is retried from its checkpoint), then 2 more
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = 0.01
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get()
    hook = OneAtATime("THING#30", 12)

    # when the unit runs
    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    # then it is retried once and succeeds, and its counters hold every call's cost as DynamoDB reported it
    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert unit.retries == 1
    assert unit.items_written == 100
    assert sum(hook.units) > 0, "the endpoint reports no ConsumedCapacity: nothing to compare"
    assert unit.write_units == pytest.approx(sum(hook.units)), (
        f"unit counted {unit.write_units} write units; DynamoDB reported {sum(hook.units)} in {len(hook.units)} calls"
    )
    assert unit.unprocessed_retries == hook.unprocessed == 12
    run = MigrationRun.objects.get(pk=run.pk)
    assert run.write_units == pytest.approx(sum(hook.units))
    assert run.unprocessed_retries == 12
