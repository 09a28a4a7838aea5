"""A drain made of many chunks, each waited for less than a tenth of the lease, lets the lease expire under
the chunks still queued: ``_UnitPipeline._settle_one`` renews (``_keep_alive``) only when *one* wait times out
(``futures_wait(timeout=LEASE_SECONDS / 10)``), never on the time since the last renewal. A page of 40 chunks
(pages of 1,000 rows) at a concurrency of 2 is 20 rounds of calls after its handover, its checkpoint (the next
renewal) only once all are accepted; 20 rounds of 0.25 s with a lease of 4 s (waits of 0.4 s) is 5 s without a
renewal. Once it expired, another runner takes the unit over (a real ``_lease_take``) and this runner goes on
sending the unit's queued chunks (nothing looks at the lease until the page's checkpoint): "a runner that lost
its lease stops writing" does not hold, and neither does the commit's "a drain longer than the lease does not
let the lease expire under chunks still queued". With the defaults (concurrency 4, pages of 500 rows: 6
rounds) the gap needs a chunk longer than 50 s; with ``LIZZY_MIGRATION_WRITE_CONCURRENCY=2`` or pages of 1,000
rows, 28-s chunks (throttling retried, a slow endpoint) expire a 300-s lease the same way.

Fix: renew on the time since the last renewal (the checkpoint's or the keep-alive's), e.g. wait with a timeout
of ``fenced_at + LEASE/10 - now`` and call ``_keep_alive`` whenever that passed, whatever the number of
futures settled in between.
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


def test_many_short_waits_longer_than_the_lease_keep_the_lease(sqlite_source, settings, dynamodb, monkeypatch):
    # given leases of 4 s, pages of 1,000 rows (40 chunks), 2 calls in flight, each call of the last page
    # (rows 651-1650) 0.25 s: every single wait is under the keep-alive's 0.4 s, the page's drain is 5 s
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 4
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 1000
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 2
    run = one_entity_run(sqlite_source, settings, 1650, unit_rows=100_000)
    unit = run.segments.get().pk
    expired: list[float] = []
    taken_over = threading.Event()
    after_takeover: list[str] = []  # keys this runner sent once another runner had the unit

    settle = runs._UnitPipeline._settle_one

    def watched(self):
        settle(self)
        lease = Segment.objects.get(pk=unit)
        if not taken_over.is_set() and lease.lease_expires_at < runs.timezone.now():
            expired.append(time.monotonic())
            other, _segment = runs._lease_take(unit, "other-host:1:1:feedbeef")  # what another runner does
            if other is not None:
                taken_over.set()

    monkeypatch.setattr(runs._UnitPipeline, "_settle_one", watched)

    def slow_last_page(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            ids = [int(request["PutRequest"]["Item"]["id"]["N"]) for request in requests]
            if min(ids) > 650:
                time.sleep(0.25)
            if taken_over.is_set():
                after_takeover.extend(str(n) for n in ids)
        return send(params)

    # when the unit's task runs it
    with fault_injection(slow_last_page):
        segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)

    # then the lease never expired while this runner waited for its chunks (it fails: it expired about 4 s
    # into the last page's 5-s drain, another runner took the unit, and this one kept sending its chunks)
    assert expired == [], (
        f"the lease expired during the drain; taken over: {taken_over.is_set()}, "
        f"{len(after_takeover)} item(s) sent by this runner after the takeover"
    )
