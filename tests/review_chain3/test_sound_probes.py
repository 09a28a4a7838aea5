"""Probes of ddfafb4 that pass on the reviewed code (kept as evidence of what was checked)."""

from __future__ import annotations

from collections import Counter

import pytest

from lizzy.dynamodb import DynamoDBUnavailable
from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_pause, run_reopen, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import drain_queue, one_entity_run, two_entity_run


def _pause_hook(run, first_key: str):
    keys: list[str] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            page = [r["PutRequest"]["Item"]["PK"]["S"] for reqs in params["RequestItems"].values() for r in reqs]
            keys.extend(page)
            if first_key in page and not keys[: -len(page)].count(first_key):
                run_pause(run=MigrationRun.objects.get(pk=run.pk))
        return send(params)

    return hook, keys


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("when", ["before", "after"], ids=["paused-before-checkpoint", "paused-after-checkpoint"])
def test_a_unit_dropped_when_the_run_paused_in_its_first_page_is_taken_again_on_resume(
    sqlite_source, settings, dynamodb, monkeypatch, concurrency, when
):
    # given 230 rows in units of 50, pages of 10; the chain takes unit 2 first (rows 101-150), and the run is
    # paused just before (refused) or just after (accepted) the checkpoint of unit 2's first page (101-110)
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 10
    run = one_entity_run(sqlite_source, settings, 230)
    checkpoint = runs._UnitPipeline._checkpoint
    paused = []

    def pausing(self, rows, last_key, outcome):
        hit = last_key == [110] and not paused
        if hit and when == "before":
            paused.append(run_pause(run=MigrationRun.objects.get(pk=run.pk)))
        checkpoint(self, rows, last_key, outcome)
        if hit and when == "after":
            paused.append(run_pause(run=MigrationRun.objects.get(pk=run.pk)))

    monkeypatch.setattr(runs._UnitPipeline, "_checkpoint", pausing)
    queue: list[int] = []

    # when the first unit's task runs, the run is paused in unit 2's first page, then resumed and drained
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda u: queue.append(u.pk), chain_seconds=60)
    run.refresh_from_db()
    assert paused
    assert run.status == RunStatus.PAUSED
    assert not run.segments.exclude(lease_owner="").exists()  # nothing left leased
    assert run.segments.get(index=2).rows_read == (10 if when == "after" else 0)
    run_reopen(run=run)
    drain_queue(list(run.segments.filter(done=False).values_list("pk", flat=True)))

    # then every row is counted once and the run succeeded
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)
    assert all(run.segments.values_list("done", flat=True))


@pytest.mark.django_db
def test_a_limited_run_paused_in_the_first_page_taken_ahead_resumes_to_its_limit(sqlite_source, settings, dynamodb):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = two_entity_run(sqlite_source, settings, 60, 60, limit=10)
    first = run.segments.order_by("pk").first()
    hook, keys = _pause_hook(run, "WIDGET#1")
    with fault_injection(hook):
        segment_run(segment_id=first.pk, on_unit=lambda unit: None, chain_seconds=60)
    run_reopen(run=MigrationRun.objects.get(pk=run.pk))
    with fault_injection(hook):
        drain_queue(list(run.segments.filter(done=False).values_list("pk", flat=True)))
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 20, 20)
    assert {k for k in keys if k.startswith("WIDGET#")} == {f"WIDGET#{n}" for n in range(1, 11)}


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_transient_start_error_after_a_started_unit_leaves_that_unit_continued_and_ends_the_chain(
    sqlite_source, settings, sent, monkeypatch, concurrency
):
    # given the third unit the chain takes failing to open (transient): the unit before it is itself one the
    # chain took ahead (``self.next`` continued), not the task's own
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 330)
    opened = runs._unit_open
    taken: list[int] = []

    def flaky(lease, run_, context, on_rows, ledger, segment, *, writer):
        taken.append(segment.pk)
        if len(taken) == 4:  # the task's own unit, then three taken ahead: the third fails
            raise DynamoDBUnavailable("the endpoint went away")
        return opened(lease, run_, context, on_rows, ledger, segment, writer=writer)

    monkeypatch.setattr(runs, "_unit_open", flaky)
    queue: list[int] = []
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda u: queue.append(u.pk), chain_seconds=60)

    # then the units taken before it are done, the failed one free and queued once more, no other taken
    failed = taken[3]
    done = set(run.segments.filter(done=True).values_list("pk", flat=True))
    assert set(taken[:3]) <= done
    assert not run.segments.exclude(lease_owner="").exists()
    assert Counter(queue)[failed] == 2
    assert len(taken) == 4  # the chain took nothing after the failure
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 330, 330)
