"""A page DynamoDB refuses is rewritten item by item (``page_rewrite`` → ``_one_by_one``); the unit's
``write_units`` then misses write units DynamoDB reported for the unit's own calls:

- the chunks of the rewrite's batch that DynamoDB accepted before another of its chunks was refused: their
  ``ConsumedCapacity`` is merged into ``dynamodb_batch_write``'s ``total``, which is never returned when it
  raises (``_batch`` adds to the outcome only on return; ``_batch_write_concurrently`` raises the chunk's
  error), though on_chunk saw them;
- every PutItem of the item-by-item pass: ``dynamodb_put_item`` drops the response (its ConsumedCapacity,
  asked for by ``client._call``'s ``ReturnConsumedCapacity=TOTAL``), ``_one_by_one`` counts ``written`` only.

docs/MIGRATIONS.md: the unit's counters hold "consumed write units as DynamoDB reported them for the unit's
own calls"; writer.PageOutcome.write_units: "(a page rewritten item by item: both writes)".

Fix: carry the partial total on the raised error (e.g. attach ``total`` to the exception, or let on_chunk's
result feed the outcome) and have ``dynamodb_put_item`` return the write units, added by ``_one_by_one``.
"""

from __future__ import annotations

import threading

import pytest

from lizzy.dynamodb.capacity import write_units_of
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run


@pytest.mark.django_db
def test_a_rewritten_pages_write_units_are_the_ones_dynamodb_reported(sqlite_source, settings, dynamodb):
    # given one unit of 100 rows, one page, at concurrency 4; DynamoDB refusing every BatchWriteItem that
    # carries THING#1 (the page is rewritten: its batch refused again, then one PutItem each)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get()
    reported: list[float] = []
    lock = threading.Lock()

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            if any(request["PutRequest"]["Item"]["PK"]["S"] == "THING#1" for request in requests):
                raise client_error("ValidationException", "One or more parameter values were invalid", operation)
        response = send(params)
        if operation in ("BatchWriteItem", "PutItem"):
            with lock:
                reported.append(write_units_of(operation, response.get("ConsumedCapacity"), table="Things"))
        return response

    # when the unit runs
    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    # then its write units are those DynamoDB reported for its calls (it fails: the rewrite's accepted chunks
    # and its PutItems are not counted)
    unit.refresh_from_db()
    assert unit.items_written == 100
    assert sum(reported) > 0, "the endpoint reports no ConsumedCapacity: nothing to compare"
    assert unit.write_units == pytest.approx(sum(reported)), (
        f"unit counted {unit.write_units} write units; DynamoDB reported {sum(reported)} in {len(reported)} calls"
    )
