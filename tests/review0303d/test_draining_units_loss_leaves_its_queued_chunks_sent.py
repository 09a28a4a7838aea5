"""The draining unit's lost lease, found by the chain's keep-alive in the head's wait, stops nothing: every
chunk of the lost unit still queued in the shared writer is sent afterwards.

f36e36c: ``_Chain.keep_alive`` no longer raises the current (draining) unit's ``LeaseLost`` in the head's
wait, it stores it in ``current.lost``, raised by the current pipeline "at its next look" (``renew_if_due``,
``_settle_one``). But the current unit's next look is only after ``_Chain._start`` returns, and the head's
wait inside ``_start`` (``_settle_one`` on the head's first chunk) waits for a future queued *behind* the
draining unit's chunks in the chain's FIFO ``BatchWriter``: nothing cancels those, so every one of them is
sent after this runner knew another runner holds the unit (not a regression: with f36e36c^'s runs.py the same
4 calls go out, the head's drop waiting for its own futures; the fix just did not cover it). Promise (issue
14, docs "Leases and fencing"): a runner that lost its lease sends no chunk after it learns.

Fix: where ``keep_alive`` records ``current.lost``, also cancel the current pipeline's futures not started
(``for future, _page in current.window: future.cancel()``, as ``close`` does for a shared writer); and have
``_checkpoint_done`` / ``drain`` raise ``lost`` before anything else (``page_rewrite`` included). (Tried:
the cancel loop alone in ``keep_alive`` makes this test pass.)
"""

from __future__ import annotations

import time

import pytest
from django.db.models import F

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db


def test_no_chunk_of_the_draining_unit_is_sent_after_its_loss_was_found(sqlite_source, settings, dynamodb, monkeypatch):
    # given units of 400 rows in pages of 100 (4 chunks), concurrency 4 (a window of 8 chunks: 4 in flight, 4
    # queued when the last page is handed over), a lease of 2 s (looked at every 0.1 s of a wait), the first
    # unit's calls 0.5 s each, last-wins keys by name with row 950 sharing row 850's key (the unit taken
    # ahead, rows 801-, waits inside ``_start`` for its first page's chunks before its second)
    settings.LIZZY_MIGRATION_UNIT_ROWS = 400
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 2
    rows = things_rows(1200)
    rows[949]["name"] = rows[849]["name"]
    mapping = things_mapping(**{"key-collisions": "last-wins"})
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${name}"
    plan = plan_save(name="lastwins", source_url=sqlite_source(THINGS_DDL, {"things": rows}), mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    first = run.segments.get().pk
    first_keys = {f"THING#thing {n}" for n in range(1, 401)}
    calls: list[tuple[float, bool]] = []  # (monotonic start, carries a first-unit item)
    learned: list[float] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            ours = any(request["PutRequest"]["Item"]["PK"]["S"] in first_keys for request in requests)
            calls.append((time.monotonic(), ours))
            if ours:
                time.sleep(0.5)
        return send(params)

    renew = runs.lease_renew

    def renew_recording_the_loss(*, lease):
        try:
            renew(lease=lease)
        except runs.LeaseLost:
            if lease.segment_id == first and not learned:
                learned.append(time.monotonic())
            raise

    monkeypatch.setattr(runs, "lease_renew", renew_recording_the_loss)
    start, heads = runs._Chain._start, []

    def first_unit_lost_then_start(self, lease, segment, context, on_rows):
        if not heads:
            heads.append(segment.pk)
            # the first unit, all its pages handed over, lost its lease (another runner took it) and a tenth of
            # its lease has passed since it was extended: the chain's next keep-alive finds out
            Segment.objects.filter(pk=first).update(fence=F("fence") + 1)
            self.current.renewed_at -= self.current.keep_every
        return start(self, lease, segment, context, on_rows)

    monkeypatch.setattr(runs._Chain, "_start", first_unit_lost_then_start)

    # when one task chains the units
    with fault_injection(hook):
        segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then the loss was found while the head waited, and no call with a first-unit item started after that (it
    # fails: the first unit's queued chunks are all sent while the head waits behind them)
    assert learned, "the first unit's loss was never found by a keep-alive"
    late = sum(1 for started, ours in calls if ours and started > learned[0])
    assert late == 0, f"{late} BatchWriteItem call(s) of the unit whose lease was lost started after it was found lost"
    assert Segment.objects.get(pk=heads[0]).done  # the head was kept (f36e36c's fix still holds)
