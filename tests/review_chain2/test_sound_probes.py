"""Probes that pass on the reviewed code (kept as evidence of what was checked)."""

from __future__ import annotations

import logging

import pytest

from lizzy.dynamodb import DynamoDBUnavailable
from migration_app.models import RunStatus
from migration_app.services import runs
from migration_app.services.runs import RunFailed, run_reopen, segment_run
from migration_app.sources.base import SourceError
from tests.review_chain.helpers import drain_queue, one_entity_run, two_entity_run

pytestmark = pytest.mark.django_db


def _failing_open_once(monkeypatch, index, error):
    opened = runs._unit_open
    failures = []

    def flaky_open(lease, run_, context, on_rows, ledger, segment, *, writer):
        if segment.index == index and not failures:
            failures.append(segment.pk)
            raise error
        return opened(lease, run_, context, on_rows, ledger, segment, writer=writer)

    monkeypatch.setattr(runs, "_unit_open", flaky_open)
    return failures


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_unit_failing_to_start_in_the_chain_leaves_the_unit_before_checkpointed_and_a_resume_finishes(
    sqlite_source, settings, sent, monkeypatch, caplog, concurrency
):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 230)
    _failing_open_once(monkeypatch, 2, SourceError("relation main.things: permission denied"))
    with caplog.at_level(logging.ERROR), pytest.raises(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda u: None, chain_seconds=60)
    run.refresh_from_db()
    first, taken = run.segments.get(index=0), run.segments.get(index=2)
    assert run.status == RunStatus.FAILED
    assert "things[2]" in run.last_error
    assert "permission denied" in run.last_error
    assert taken.last_error == run.last_error
    assert first.rows_read == 50  # its last pages drained and checkpointed (not marked done: the run failed)
    assert not run.segments.exclude(lease_owner="").exists()
    assert len([r for r in caplog.records if "failed:" in r.message]) == 1  # run_fail's, once
    run_reopen(run=run)
    drain_queue(list(run.segments.filter(done=False).values_list("pk", flat=True)))
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)
    assert sorted(key for _t, key in sent) == sorted(f"THING#{n}" for n in range(1, 231))


def test_a_transient_error_at_start_whose_requeue_fails_leaves_the_unit_to_its_own_message(
    sqlite_source, settings, sent, monkeypatch
):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 230)
    _failing_open_once(monkeypatch, 1, DynamoDBUnavailable("the endpoint went away"))
    queue: list[int] = []
    calls = []

    def on_unit(unit):
        calls.append(unit.pk)
        if unit.index == 1 and calls.count(unit.pk) == 2:
            raise ConnectionError("broker away")  # the chain's re-queue of the unit released
        queue.append(unit.pk)

    segment_run(segment_id=run.segments.get().pk, on_unit=on_unit, chain_seconds=60)
    second = run.segments.get(index=1)
    assert (second.done, second.lease_owner) == (False, "")
    assert calls.count(second.pk) == 2
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_limited_run_whose_units_have_a_single_page_each(sqlite_source, settings, sent, concurrency):
    # the unit taken ahead has fewer rows than the limit: its single first page is all of it
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = two_entity_run(sqlite_source, settings, 60, 7, limit=10)
    queue = list(run.segments.order_by("pk").values_list("pk", flat=True))
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 17, 17)
