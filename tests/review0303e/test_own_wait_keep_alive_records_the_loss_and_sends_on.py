"""The chain's keep-alive is also the *current* unit's own ``on_wait``: called from inside that unit's own
wait, it finds the unit's lease lost, records it (``current.lost``), cancels ``current.window`` and returns
normally, and the unit's caller goes on sending chunks it has not looked at ``lost`` for.

``_UnitPipeline._keep_alive`` is ``self.renew_if_due(); self.on_wait()``, and in a chain ``on_wait`` is
``_Chain.keep_alive``, whose first step is ``current.renew_if_due()`` on the same pipeline (``current is
self``). Both compare ``time.monotonic() - renewed_at`` with ``keep_every``: when the tenth of the lease runs
out between the two calls (a GIL switch to one of the writer threads, a slow ``Segment`` UPDATE of the
head), the first says "not due", the second renews, finds the fencing token taken (a takeover) and, by
f36e36c/7b1561c's design for *another* unit's wait, stores the loss instead of raising it. Back in the
current unit:

- concurrency 1 (``page_load``'s sequential ``dynamodb_batch_write``, ``on_chunk=_on_chunk``): the page's
  next chunk is sent; only the ``on_chunk`` after it raises;
- concurrency 4 (``write``'s window wait, ``_settle_one``'s last ``_keep_alive`` after the awaited chunk is
  done): the window loop ends (the window has room), nothing looks at ``lost``, and the next page's chunks
  are submitted to the shared writer, after the cancel loop that was meant to stop them ran.

The tests reproduce the threshold crossing by ageing ``renewed_at`` by ``keep_every`` between the two checks
(exactly what the clock does when they straddle the threshold), once, after a takeover (fence + 1).
Promise: a runner that lost its lease sends nothing after it learns.

Fix: ``_UnitPipeline._keep_alive`` raises ``self.lost`` after ``on_wait`` (``if self.lost: raise
self.lost``), or ``keep_alive`` raises the current unit's loss when it is called from that unit's own wait
(store it only when another pipeline is waiting); and ``write`` looks at ``lost`` before ``page_rewrite``
and before submitting.
"""

from __future__ import annotations

import time

import pytest
from django.db.models import F

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


def _threshold_crossed_between_the_two_checks(monkeypatch, first_unit, learned, *, when):
    """Once ``when(current)`` holds: the unit's lease is taken over, and the tenth of the lease runs out
    between the pipeline's own ``renew_if_due`` (just passed: not due) and the chain's (due)."""
    keep_alive = runs._Chain.keep_alive

    def keep_alive_after_the_own_check(self):
        current = self.current
        if not learned and current is not None and current.lease.segment_id == first_unit and when(current):
            Segment.objects.filter(pk=first_unit).update(fence=F("fence") + 1)  # another runner took it over
            current.renewed_at -= current.keep_every  # the clock crossed the threshold since the own check
            keep_alive(self)
            assert current.lost is not None, "the chain's keep-alive did not find the loss"
            learned.append(time.monotonic())
            return
        keep_alive(self)

    monkeypatch.setattr(runs._Chain, "keep_alive", keep_alive_after_the_own_check)


def _calls_recorded(first_keys, seconds=0.05):
    calls: list[tuple[float, bool]] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            ours = any(request["PutRequest"]["Item"]["PK"]["S"] in first_keys for request in requests)
            calls.append((time.monotonic(), ours))
            if ours:
                time.sleep(seconds)
        return send(params)

    return calls, hook


def test_concurrency_1_sends_the_pages_next_chunk_after_the_chain_found_the_loss(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given one unit of 300 rows in pages of 100 (4 chunks each, sent one after another: concurrency 1),
    # in a chain (a Celery task's units), and its lease taken over while its first page is being sent
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=1000)
    first = run.segments.get().pk
    calls, hook = _calls_recorded({f"THING#{n}" for n in range(1, 301)})
    learned: list[float] = []
    _threshold_crossed_between_the_two_checks(monkeypatch, first, learned, when=lambda current: True)

    # when the task runs it
    with fault_injection(hook):
        segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then nothing of the unit is sent after the loss was found (it fails: the page's next chunk goes out,
    # the on_chunk after it raises)
    assert calls, "no BatchWriteItem call was recorded (the hook did not match the items' keys)"
    assert learned, "the loss was never found"
    late = sum(1 for started, ours in calls if ours and started > learned[0])
    assert late == 0, f"{late} BatchWriteItem call(s) of the lost unit started after its loss was found"


def test_concurrency_4_submits_the_next_page_after_the_chain_found_the_loss(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given one unit of 600 rows in pages of 60 (3 chunks: 25, 25, 10), concurrency 4 (a window of 8: the third
    # page waits for one chunk of the first), calls 300 ms each, in a chain; the lease taken over and found
    # lost at the last keep-alive of that wait (the awaited chunk done, the two pages still in the window)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 60
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 600, unit_rows=1000)
    first = run.segments.get().pk
    calls, hook = _calls_recorded({f"THING#{n}" for n in range(1, 601)}, seconds=0.3)
    learned: list[float] = []
    _threshold_crossed_between_the_two_checks(
        monkeypatch, first, learned, when=lambda current: len(current.window) == 6 and current.window[0][0].done()
    )

    # when the task runs it
    with fault_injection(hook):
        segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then no call of the unit starts after the loss was found, beyond those already running then (at most 4,
    # the writer's threads; it fails: the next page's chunks are submitted after the cancel loop and sent)
    assert learned, "the loss was never found"
    late = sum(1 for started, ours in calls if ours and started > learned[0])
    assert late == 0, f"{late} BatchWriteItem call(s) of the lost unit started after its loss was found"
