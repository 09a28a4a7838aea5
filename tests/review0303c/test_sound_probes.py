"""Probes that pass on main (evidence of what was checked and found sound): the time-based keep-alive adds no
UPDATE to a normal chained run at the default lease (a writer: only ``_renew`` where no checkpoint came
between pages; concurrency 1 renews before every page, as before 0ed9ec7); a renewal never brings back the
lease of a unit released done; a ``LeaseLost`` raised from ``on_chunk`` at concurrency 1 steps aside (no
checkpoint past the page, the run not failed, the unit left to the runner that took it)."""

from __future__ import annotations

import threading
import time

import pytest

from migration_app.models import RunStatus, Segment
from migration_app.services import runs
from migration_app.services.runs import LeaseLost, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import drain_queue
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_no_time_based_renewal_in_a_normal_chained_run(sqlite_source, settings, sent, monkeypatch, concurrency):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 2000, unit_rows=500)
    renew_if_due, lease_renew, due, renewals = runs._UnitPipeline.renew_if_due, runs.lease_renew, [], []

    def counted_due(self):
        before = self.renewed_at
        renew_if_due(self)
        if self.renewed_at != before:
            due.append(self.unit)

    def counted_renew(*, lease):
        renewals.append(lease.segment_id)
        return lease_renew(lease=lease)

    monkeypatch.setattr(runs._UnitPipeline, "renew_if_due", counted_due)
    monkeypatch.setattr(runs, "lease_renew", counted_renew)
    drain_queue([run.segments.get().pk])
    run.refresh_from_db()
    assert (run.status, run.rows_read, len(sent)) == (RunStatus.SUCCEEDED, 2000, 2000)
    assert due == []  # 300-s leases: the keep-alive never fires in a run of seconds
    # concurrency 1: the page's fencing check is ``_renew`` (refusing a stopped run), not ``lease_renew``
    assert renewals == []


def test_a_renewal_does_not_bring_back_the_lease_of_a_unit_released_done(sqlite_source, settings, dynamodb):
    run = one_entity_run(sqlite_source, settings, 10, unit_rows=100)
    unit = run.segments.get().pk
    lease = runs.unit_lease(segment_id=unit, owner="me:1:1:aaaa")
    assert runs._lease_release(lease, done=True)
    with pytest.raises(LeaseLost):
        runs.lease_renew(lease=lease)
    assert Segment.objects.get(pk=unit).lease_expires_at is None


def test_lease_lost_from_on_chunk_steps_aside_without_failing_the_run(sqlite_source, settings, dynamodb):
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 100, unit_rows=1000)
    unit = run.segments.get().pk
    taken_over = threading.Event()

    def slow_first_call(operation, params, send):
        if operation == "BatchWriteItem" and not taken_over.is_set():
            time.sleep(1.2)
            if runs._lease_take(unit, "other-host:1:1:feedbeef")[0] is not None:
                taken_over.set()
        return send(params)

    with fault_injection(slow_first_call):
        segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)  # no RunFailed
    run.refresh_from_db()
    segment = Segment.objects.get(pk=unit)
    assert taken_over.is_set()
    assert run.status != RunStatus.FAILED
    assert (segment.lease_owner, segment.rows_read, segment.last_key, segment.done) == (
        "other-host:1:1:feedbeef",
        0,
        None,
        False,
    )
