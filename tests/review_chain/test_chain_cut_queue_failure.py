"""Liveness: the chain cuts the unit it takes ahead (``_Chain.start_next`` -> ``_unit_cut``), and the cut's
``on_unit`` (Celery's ``apply_async``) can fail once (a broker hiccup). ``start_next`` swallows it as "left
to its own task", releases and re-queues the unit it took, but the units that cut committed are left with
no message at all. Only another chain's sweep (while its deadline lasts) can find them: with the queue
drained by tasks whose chain has run out, the run stays ``running`` forever, every message consumed.

Outside the chain the same failure fails the run at once (``_unit_cut`` in ``_segment_guarded``): the
control test below."""

from __future__ import annotations

import pytest

from migration_app.models import RunStatus
from migration_app.services.runs import RunFailed, segment_run
from tests.review_chain.helpers import drain_queue, one_entity_run

pytestmark = pytest.mark.django_db


class BrokerHiccup(Exception):
    pass


def _queue_failing_once(queue: list[int], fail_at: int):
    calls = []

    def on_unit(unit):
        calls.append(unit.pk)
        if len(calls) == fail_at:
            raise BrokerHiccup("could not send the message")
        queue.append(unit.pk)

    return on_unit


def test_units_cut_in_the_chain_whose_message_was_not_sent_are_not_left_without_one(sqlite_source, settings, sent):
    # given a run of 230 rows in units of 50; the first unit's cut queues units 1 and 2 (messages 1, 2); the
    # chain then takes unit 2 ahead and cuts it: its first new unit's message (the third) fails to send
    run = one_entity_run(sqlite_source, settings, 230)
    queue: list[int] = []
    # (fixed: the chain now fails the run, naming the unit whose cut could not queue its units, as the unit's own
    # task does outside a chain)
    with pytest.raises(RunFailed, match=r"unit things:things\[2\].*could not send the message"):
        segment_run(segment_id=run.segments.get().pk, on_unit=_queue_failing_once(queue, fail_at=3), chain_seconds=60)

    # when every message is delivered, to tasks whose chain has run out (a worker past its 60 s, or
    # LIZZY_MIGRATION_CHAIN_SECONDS=0)
    drain_queue(queue, chain_seconds=1e-9)

    # then the run is not left running with units that no message will ever run (it is)
    run.refresh_from_db()
    left = list(run.segments.filter(done=False).values_list("index", "lease_owner"))
    assert run.status != RunStatus.RUNNING, f"run {run.status}, every message consumed, units left: {left}"


def test_control_the_same_failure_outside_a_chain_fails_the_run(sqlite_source, settings, sent):
    run = one_entity_run(sqlite_source, settings, 230)
    queue: list[int] = []
    with pytest.raises(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=_queue_failing_once(queue, fail_at=1), chain_seconds=0)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
