"""``_batch_write_concurrently`` (27992a5): the first error wins, so when a chunk's refusal (DynamoDB's
ValidationException) is settled before a later chunk's ``on_chunk`` raises ``LeaseLost``, the loss is
swallowed (``error = error or exc``) and the refusal is raised instead. The migration's item-by-item
fallback (``_one_by_one``: "DynamoDB refused the batch ... one PutItem each") takes the refusal for its cue
and sends a PutItem of the lost unit, after the unit learned its lease was lost. Before 27992a5 the
``finally`` loop raised on_chunk's ``LeaseLost`` (the refusal as its ``__context__``).

Promise: a runner that lost its lease sends nothing after it learns.

Fix: in the drain loop, an error of ``collect``/``on_chunk`` (the caller refusing to go on) wins over a
chunk's error: raise it (chained ``from`` the first), e.g. mark settle's on_chunk path and prefer it.
"""

from __future__ import annotations

import time

import pytest
from django.db.models import F

from lizzy.dynamodb import dynamodb_batch_write
from lizzy.tables import SESSIONS
from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.runs import LeaseLost, segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_on_chunk_lease_loss_after_a_refused_chunk_is_the_error_raised(dynamodb):
    # given 4 chunks at concurrency 2, DynamoDB refusing the first, and on_chunk finding the lease lost at
    # the first chunk that landed
    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            if requests[0]["PutRequest"]["Item"]["phone"]["S"] == "+12065550000":
                raise client_error("ValidationException", "refused chunk", operation)
        return send(params)

    def on_chunk(_result):
        raise LeaseLost("unit 1: lease 1 of w was lost")

    # then the caller is told its lease is lost (it fails: the refusal is raised, the loss swallowed)
    with fault_injection(hook), pytest.raises(LeaseLost):
        dynamodb_batch_write(table=SESSIONS.name, items=items(100), concurrency=2, on_chunk=on_chunk)


@pytest.mark.django_db
def test_a_lost_unit_sends_no_put_item_after_its_on_chunk_found_the_loss(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given a unit at concurrency 4 whose first page (100 rows) has an item over 400 KB: the page is rewritten
    # (``page_rewrite``: its 99 good items in 4 chunks, sent concurrently), DynamoDB refusing the first chunk;
    # the unit's lease taken over, found at the first on_chunk (the keep-alive due)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    big = {"id": 100, "name": "x" * 500_000, "price": "1.50", "active": 1, "updated_at": None, "tags": "[]"}
    run = one_entity_run(sqlite_source, settings, 99, unit_rows=1000, extra=[big])
    unit = run.segments.get().pk
    learned: list[float] = []  # when on_chunk first raised LeaseLost: the unit learned it there
    taken: list[bool] = []
    on_chunk = runs._UnitPipeline._on_chunk

    def on_chunk_after_takeover(self, result):
        if not taken:
            Segment.objects.filter(pk=unit).update(fence=F("fence") + 1)  # another runner took it over
            self.renewed_at -= self.keep_every  # the keep-alive is due: it renews, and finds the loss
            taken.append(True)
        try:
            on_chunk(self, result)
        except LeaseLost:
            if not learned:
                learned.append(time.monotonic())
            raise

    monkeypatch.setattr(runs._UnitPipeline, "_on_chunk", on_chunk_after_takeover)
    calls: list[tuple[float, str]] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            if requests[0]["PutRequest"]["Item"]["PK"]["S"] == "THING#1":
                raise client_error("ValidationException", "One or more parameter values were invalid", operation)
        if operation in ("BatchWriteItem", "PutItem"):
            calls.append((time.monotonic(), operation))
        return send(params)

    # when the unit runs (segment_run logs the loss: "the runner that took it over continues")
    with fault_injection(hook):
        segment_run(segment_id=unit, on_unit=lambda u: None, chain_seconds=0)

    # then nothing is sent after the loss was learned (it fails: one PutItem goes out, the item-by-item
    # fallback taking the refusal that hid the loss for its cue)
    assert learned, "the loss was never found"
    late = [operation for started, operation in calls if started > learned[0]]
    assert late == [], f"sent after the loss was learned: {late}"
