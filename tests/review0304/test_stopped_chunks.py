"""Review of 528362e (branch review-0303h, stop 27): a stopped chunk sends no retry and waits out no backoff.

1. A unit sharing its chain's ``BatchWriter`` closed (``_UnitPipeline.close``) only cancelled its futures: a
   chunk of it already running still sent its retries (one 0.31 s after the close). Each unit now passes its
   own stop event with every chunk it submits (``BatchWriter.submit(stop=)``), set by its ``close``.
2. A chunk stopped during its backoff slept the backoff out before raising (up to 5 s at the cap, for
   Ctrl-C too). The backoff now waits on the stop event.
"""

from __future__ import annotations

import threading
import time

import pytest

from lizzy.dynamodb import BatchWriteIncomplete, BatchWriter, batch, batch_write_chunks
from lizzy.tables import SESSIONS
from migration_app.services.plans import plan_context
from migration_app.services.runs import _lease_take, _unit_open, _unit_pump
from migration_app.services.writer import KeyLedger
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run


def items(count, prefix="+1206555"):
    return [{"phone": f"{prefix}{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


class SlowUnprocessed:
    """BatchWriteItem hook: the chunk whose first item is ``first`` answers after ``delay`` seconds with every
    item unprocessed, every time; the others are sent. Records (time, first item) of every call."""

    def __init__(self, first_of, first, delay):
        self.first_of, self.first, self.delay = first_of, first, delay
        self.calls: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def __call__(self, operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ((table, requests),) = params["RequestItems"].items()
        first = self.first_of(requests[0])
        with self.lock:
            self.calls.append((time.monotonic(), first))
        if first == self.first:
            time.sleep(self.delay)
            return {"UnprocessedItems": {table: requests}}
        return send(params)

    def after(self, moment, first):
        return [round(at - moment, 3) for at, name in self.calls if at > moment and name == first]


def phone(request):
    return request["PutRequest"]["Item"]["phone"]["S"]


def test_a_submissions_stop_ends_its_retries_and_leaves_the_shared_writer_working(dynamodb):
    # given a writer shared by two callers; the first caller's chunk is slow and comes back unprocessed
    hook = SlowUnprocessed(phone, "+12065550000", 0.3)
    first, second = (
        batch_write_chunks(table=SESSIONS.name, items=items(25, prefix)) for prefix in ("+1206555", "+1503555")
    )
    writer = BatchWriter(concurrency=2)
    mine, theirs = threading.Event(), threading.Event()
    with fault_injection(hook):
        stopped = writer.submit(first[0], table=SESSIONS.name, stop=mine)
        landed = writer.submit(second[0], table=SESSIONS.name, stop=theirs)
        time.sleep(0.1)
        # when the first caller stops while its chunk's call is in flight
        mine.set()
        at = time.monotonic()
        with pytest.raises(BatchWriteIncomplete) as raised:
            stopped.result(timeout=5)
        # then that chunk sends no retry, and the other caller's chunks (sent before and after) land
        assert hook.after(at, "+12065550000") == []
        assert raised.value.unwritten == 25
        assert landed.result(timeout=5).written == 25
        later = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(5, "+1971555"))[0], table=SESSIONS.name, stop=theirs
        )
        assert later.result(timeout=5).written == 5
    writer.close()


def test_close_with_cancel_stops_every_submissions_retries(dynamodb):
    hook = SlowUnprocessed(phone, "+12065550000", 0.3)
    writer = BatchWriter(concurrency=2)
    with fault_injection(hook):
        future = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(25))[0], table=SESSIONS.name, stop=threading.Event()
        )
        time.sleep(0.1)
        at = time.monotonic()
        writer.close(cancel=True)
    with pytest.raises(BatchWriteIncomplete):
        future.result(timeout=0)
    assert hook.after(at, "+12065550000") == []


@pytest.mark.parametrize("how", ["submission", "close"])
def test_a_stop_during_the_backoff_ends_it_at_once(dynamodb, monkeypatch, how):
    # given a chunk that comes back unprocessed at once, then waits a 5-s backoff
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 5.0)
    hook = SlowUnprocessed(phone, "+12065550000", 0.0)
    writer, stop = BatchWriter(concurrency=1), threading.Event()
    with fault_injection(hook):
        future = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(25))[0], table=SESSIONS.name, stop=stop
        )
        time.sleep(0.2)
        # when it is stopped in its backoff
        at = time.monotonic()
        stop.set() if how == "submission" else writer.close(cancel=True)
        with pytest.raises(BatchWriteIncomplete):
            future.result(timeout=10)
        waited = time.monotonic() - at
    writer.close()
    # then it raises without sleeping the backoff out, and sent one call only
    assert waited < 2.5, f"the stopped chunk raised {waited:.2f} s after its stop (its backoff is 5 s)"
    assert len(hook.calls) == 1


@pytest.mark.django_db
def test_a_chain_units_close_stops_its_running_chunks_retries(sqlite_source, settings, dynamodb):
    # given a unit sharing a chain's writer (concurrency 2) whose first chunk is slow and comes back unprocessed
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 2
    run = one_entity_run(sqlite_source, settings, 50, unit_rows=1000)
    lease, segment = _lease_take(run.segments.get().pk, "host:1:1")
    hook = SlowUnprocessed(lambda request: request["PutRequest"]["Item"]["PK"]["S"], "THING#1", 0.3)
    shared = BatchWriter(concurrency=2)
    with fault_injection(hook), plan_context(plan=run.plan) as context:
        state = _unit_open(lease, run, context, None, KeyLedger(), segment, writer=shared)
        _unit_pump(context.source, state, pages=1)
        time.sleep(0.1)
        # when the unit is closed (dropped by its chain) while that chunk's call is in flight
        at = time.monotonic()
        state.pipeline.close()
        closed = time.monotonic()
        state.pages.close()
        time.sleep(0.5)  # a retry would be sent within the backoff's 0.1 s after the slow call's 0.3 s
    shared.close()
    # then its close waited for the call in flight, and no retry went out after the close
    assert hook.after(at, "THING#1") == [], f"retries sent after the unit's close: {hook.after(at, 'THING#1')}"
    assert closed - at < 2.0
