"""A page DynamoDB refuses is written again item by item with no look at the lease: the runner goes on
writing the unit's rows after another runner took it over.

``_UnitPipeline`` keeps its lease alive while chunks are waited for (``_settle_one``) and, at concurrency 1,
after each BatchWriteItem chunk (``page_load(on_chunk=)``). But a page refused by DynamoDB (a
ValidationException: a key attribute of the wrong type, an item the endpoint rejects) is rewritten by
``writer._one_by_one``, whose last resort is one ``PutItem`` per item in the caller's thread, with no
``on_chunk`` call between them; with a writer (concurrency > 1) the rewrite is ``page_rewrite`` from
``_checkpoint_done``/``write``, which passes no ``on_chunk`` at all (its ``_batch`` and its PutItem loop).
500 PutItems of a default page, each retried under throttling, can outlast a lease: it expires, another
runner takes the unit over, and this one sends every item of the page that is left (and its chain's other
leases, the unit taken ahead or draining, are not renewed meanwhile either).

Fix: keep the lease alive in the item-by-item rewrite too: pass ``on_chunk`` (``_keep_alive``) into
``page_rewrite`` / ``_one_by_one`` and call it after each PutItem (its ``LeaseLost`` stopping the page).
"""

from __future__ import annotations

import threading
import time

import pytest

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_runner_rewriting_a_refused_page_item_by_item_stops_once_its_unit_is_taken_over(
    sqlite_source, settings, dynamodb, concurrency
):
    # given leases of 1 s, one page of 100 rows, every BatchWriteItem refused (ValidationException), so the
    # page is written with one PutItem per item, each 0.03 s (3 s for the page)
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get().pk
    caller = threading.get_ident()
    taken_over = threading.Event()
    after_takeover: list[str] = []

    def refuse_batches(operation, params, send):
        if operation == "BatchWriteItem":
            raise client_error("ValidationException", "One or more parameter values were invalid", operation)
        if operation == "PutItem":
            if taken_over.is_set():
                after_takeover.append(params["Item"]["PK"]["S"])
            time.sleep(0.03)
            if threading.get_ident() == caller and not taken_over.is_set():
                lease = Segment.objects.get(pk=unit)
                if lease.lease_expires_at < runs.timezone.now():  # what another runner sees, and does
                    other, _segment = runs._lease_take(unit, "other-host:1:1:feedbeef")
                    if other is not None:
                        taken_over.set()
        return send(params)

    # when the unit's task runs it
    with fault_injection(refuse_batches):
        segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)

    # then the lease was kept alive during the rewrite, or at least no item was sent once another runner had
    # the unit (it fails: the lease expired about 1 s into the 3-s rewrite, another runner took the unit, and
    # this one sent the page's remaining ~65 items)
    assert after_takeover == [], (
        f"taken over: {taken_over.is_set()}; {len(after_takeover)} item(s) sent by this runner after the "
        f"takeover, from {after_takeover[:1]}"
    )
