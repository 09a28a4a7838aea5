"""Review proof (failed before the fix: this runner then sent rows 26-100). With
``LIZZY_MIGRATION_WRITE_CONCURRENCY=1`` nothing kept a unit's lease alive while a page is written:
``_UnitPipeline.write`` renews once (``lease_renew``) and then ``page_load`` sends the page's chunks one after
another in the caller's thread, up to 20 calls of a 500-row page, each retried with backoff under throttling,
with no renewal and no look at the lease until the page's checkpoint. e9126cd's keep-alive lives in
``_settle_one``, which a concurrency of 1 never reaches. A page longer than the lease lets it expire; another
runner takes the unit over and this one sends every chunk of the page that is left (not "at most those in
flight", as with a writer), then fails its checkpoint with ``LeaseLost``: two runners write the unit at once.

Fix: keep the lease alive in this path too, e.g. ``page_load(..., on_chunk=...)`` (``dynamodb_batch_write``
has an ``on_chunk``) calling ``_keep_alive`` once a tenth of the lease passed since the last renewal, its
``LeaseLost`` stopping the page before the next chunk.
"""

from __future__ import annotations

import threading
import time

import pytest

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


def test_a_runner_at_concurrency_one_sends_no_chunk_after_losing_its_lease(sqlite_source, settings, dynamodb):
    # given leases of 1 s, one call in flight, pages of 100 rows (4 calls), the call carrying row 1 held 1.5 s
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get().pk
    taken_over = threading.Event()
    after_takeover: list[int] = []

    def slow_first_call(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            ids = [int(request["PutRequest"]["Item"]["id"]["N"]) for request in requests]
            if taken_over.is_set():
                after_takeover.extend(ids)
            if 1 in ids:
                time.sleep(1.5)
                # the caller's thread (no writer at concurrency 1): another runner takes the expired lease now
                other, _segment = runs._lease_take(unit, "other-host:1:1:feedbeef")
                if other is not None:
                    taken_over.set()
        return send(params)

    # when the unit's task runs it
    with fault_injection(slow_first_call):
        segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)

    # then once another runner had the unit this one sent no chunk more: the lease is looked at after each
    # chunk (the call carrying row 1 outlasted the lease: one call is not renewed while it is in flight at
    # concurrency 1), and the unit is left to the runner that took it over
    assert taken_over.is_set()
    assert after_takeover == []
    assert Segment.objects.get(pk=unit).lease_owner == "other-host:1:1:feedbeef"
