"""Review of 2d08a17: a chunk whose retry fails with a transport error (``DynamoDBUnavailable``, a transient
error: the unit is retried from its checkpoint) loses what its earlier calls consumed.

Promise broken (docs/MIGRATIONS.md, "Leases and fencing" / pipeline section, and the commit's claim 3):
  "Write units and retries count every call the unit sent since its last checkpoint, whether or not its page
  stands: a page written again after a transient error ... costs both writes"
  and ``_Cost``: "every call counts, whether or not its page is checkpointed".

``_send_chunk`` carries its calls' ``write_units``/retries only on ``BatchWriteIncomplete``; any other exception
raised by ``client._call`` on attempt 2+ (``DynamoDBUnavailable``, a refusal) drops ``result``, and
``_UnitPipeline._settle_one`` / ``_counting`` count only ``_spent(exc)`` = None for it.

Suggested fix: in ``_send_chunk`` catch ``DynamoDBError`` around the call after the first attempt and attach
the partial result to it (e.g. ``exc.write_units/unprocessed_retries/throttle_retries`` on every DynamoDBError,
or wrap the cause in a ``BatchWriteIncomplete``-like carrier), and have ``_spent`` read those attributes from any
exception; likewise ``_batch_write_concurrently`` should add its ``failures``' cost to the error it raises.
"""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import EndpointConnectionError

from lizzy.dynamodb import batch
from lizzy.dynamodb.capacity import write_units_of
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run


class StingyThenUnreachable:
    """The chunk carrying ``pk``: accepted one item a call for ``stingy`` calls, then one transport error, then
    as sent. Records the write units DynamoDB reported for every call that reached it."""

    def __init__(self, pk, stingy):
        self.pk, self.stingy, self.failed = pk, stingy, False
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
                mine = any(r["PutRequest"]["Item"]["PK"]["S"] == self.pk for r in requests)
                stingy = mine and self.stingy > 0
                fail = mine and not stingy and not self.failed
                if stingy:
                    self.stingy -= 1
                if fail:
                    self.failed = True
            if fail:
                raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
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
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_chunks_calls_before_a_transport_error_are_counted(
    sqlite_source, settings, dynamodb, monkeypatch, concurrency
):
    # given one unit of 100 rows whose chunk with THING#30 lands one item a call for 5 calls, then its 6th call
    # fails with a transport error (DynamoDBUnavailable: the unit is retried from its checkpoint)
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = 0.01
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get()
    hook = StingyThenUnreachable("THING#30", 5)

    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert unit.retries == 1
    assert sum(hook.units) > 0
    # then every call DynamoDB answered is in the unit's write units and retries
    assert unit.write_units == pytest.approx(sum(hook.units)), (
        f"unit counted {unit.write_units} write units; DynamoDB reported {sum(hook.units)} in {len(hook.units)} calls"
    )
    assert unit.unprocessed_retries == hook.unprocessed == 5
