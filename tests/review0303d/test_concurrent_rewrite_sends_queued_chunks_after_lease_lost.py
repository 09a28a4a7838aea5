"""A page written again item by item at concurrency > 1 goes on sending chunks after its ``on_chunk`` found
the lease lost.

f36e36c passes the pipeline's ``_on_chunk`` (its keep-alive) into ``page_rewrite``. At concurrency > 1 the
rewrite's first step, ``_one_by_one`` -> ``_batch``, is ``dynamodb_batch_write(concurrency=4)``, i.e.
``lizzy.dynamodb.batch._batch_write_concurrently``: up to 2 x concurrency chunks submitted to a pool of its
own. ``on_chunk`` raising ``LeaseLost`` inside ``settle`` leaves the ``for`` loop, the ``finally`` settles
the next entry (``on_chunk`` raises again), and ``with ThreadPoolExecutor`` exits with
``shutdown(wait=True)`` -- not cancelling: every chunk submitted and not yet started is sent anyway, after
the runner learned that another runner holds the unit. (Promise: "once it is lost no call more is sent".)

Fix: in ``_batch_write_concurrently``, on an exception from ``collect`` cancel the futures not started
(``future.cancel()`` for each entry in ``in_flight``, or ``pool.shutdown(cancel_futures=True)``) and only
wait for those running; do not call ``on_chunk`` again in the ``finally``.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db.models import F

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


def test_no_chunk_of_a_concurrent_rewrite_starts_after_the_lease_was_found_lost(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given concurrency 4, a lease of 2 s (kept alive every 0.2 s), pages of 100 then 300 rows, and DynamoDB
    # refusing the second page's first chunk once (ValidationException): that page (12 chunks) is written again
    # by ``page_rewrite``, whose ``_batch`` sends its chunks from a pool of 4 threads (8 submitted at a time);
    # the rewrite's first call takes 0.3 s, the others 0.8 s
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 2
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 300
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = one_entity_run(sqlite_source, settings, 400, unit_rows=1000)
    unit = run.segments.get().pk
    state = {"refused": False, "rewriting": False, "learned": None}
    calls: list[tuple[float, str]] = []  # (monotonic start, first PK) of every BatchWriteItem
    lock = threading.Lock()

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            first = requests[0]["PutRequest"]["Item"]["PK"]["S"]
            with lock:
                calls.append((time.monotonic(), first))
                if first == "THING#101" and not state["refused"]:
                    state["refused"] = True
                    raise client_error("ValidationException", "One or more parameter values were invalid", operation)
                if first == "THING#101":
                    state["rewriting"] = True  # the rewrite's first chunk
            if state["rewriting"]:
                time.sleep(0.3 if first == "THING#101" else 0.8)
        return send(params)

    renew = runs.lease_renew

    def renew_or_find_taken_over(*, lease):
        if state["rewriting"] and state["learned"] is None:
            # another runner took the unit over during the rewrite (its fence moved on)
            Segment.objects.filter(pk=unit).update(fence=F("fence") + 1)
        try:
            renew(lease=lease)
        except runs.LeaseLost:
            if state["learned"] is None:
                state["learned"] = time.monotonic()
            raise

    monkeypatch.setattr(runs, "lease_renew", renew_or_find_taken_over)

    # when the unit's task runs it
    with fault_injection(hook):
        segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)

    # then once the keep-alive found the lease lost, no call more was started (it fails: the chunks the
    # rewrite's pool had queued are still sent, from ``shutdown(wait=True)``)
    assert state["learned"] is not None, "the rewrite's keep-alive never looked at the lease"
    late = [pk for started, pk in calls if started > state["learned"]]
    assert late == [], f"{len(late)} BatchWriteItem call(s) started after LeaseLost was raised, first {late[:3]}"
