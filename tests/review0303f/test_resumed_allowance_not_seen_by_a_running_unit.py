"""``run_reopen`` (27992a5) stores the resume's allowance on the run (``max_bad_rows=allowed``), but a unit
still running in a worker when its run failed and was resumed keeps the ``run`` it read at its lease
(``_UnitPipeline.run``): ``_fail_past_limit`` compares the run's quarantine with that stale
``run.max_bad_rows``. Its next bad row fails the run again, "more than the 0 this run allows", though the
operator resumed it with ``--max-bad-rows 5`` (2 rows quarantined, within 5).

How it happens: unit A fails the run for a bad row (``run_fail``); unit B, mid-page in another worker,
checkpoints after the operator's resume (the run pending again: B's checkpoint is not refused, B is not
stopped) and goes on. Before 27992a5 a resume never changed the allowance, so the stale copy did not matter.

Promise: a run says ``succeeded`` when true; errors name what (the limit named is not the run's).

Fix: ``_fail_past_limit`` reads the limit from the database (``MigrationRun.objects.values_list(
"max_bad_rows")`` with the count), or the pipeline refreshes ``run.max_bad_rows`` at each fenced checkpoint.
"""

from __future__ import annotations

import contextlib

import pytest

from migration_app.models import MigrationRun, QuarantinedRow, RunStatus
from migration_app.services import runs
from migration_app.services.runs import RunFailed, run_fail, run_reopen, segment_run
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


def test_a_unit_running_across_a_resume_uses_the_allowance_the_resume_stored(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given a run allowing no bad row, one unit (B) of 200 rows in pages of 100, its last row over 400 KB
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    big = {"id": 200, "name": "x" * 500_000, "price": "1.50", "active": 1, "updated_at": None, "tags": "[]"}
    run = one_entity_run(sqlite_source, settings, 199, unit_rows=1000, extra=[big])
    checkpoint = runs._UnitPipeline._checkpoint
    resumed: list[MigrationRun] = []

    def checkpoint_then_fail_and_resume(self, rows, last_key, outcome):
        checkpoint(self, rows, last_key, outcome)
        if not resumed:
            # another unit (A) quarantines a row and fails the run; the operator resumes it, allowing 5
            QuarantinedRow.objects.create(
                plan_id=run.plan_id,
                run_id=run.pk,
                rule="things",
                source_table="main.things",
                target_table="Things",
                source_key={"id": -1},
                reason="unit A's bad row",
            )
            run_fail(run_id=run.pk, error="unit A: 1 row(s) quarantined, more than the 0 this run allows")
            resumed.append(run_reopen(run=MigrationRun.objects.get(pk=run.pk), max_bad_rows=5))

    monkeypatch.setattr(runs._UnitPipeline, "_checkpoint", checkpoint_then_fail_and_resume)

    # when B goes on (its next page has the bad row: 2 quarantined, within the 5 the resume allows)
    with contextlib.suppress(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=0)

    # then the run ends succeeded (it fails: "2 row(s) quarantined, more than the 0 this run allows")
    assert resumed
    assert resumed[0].max_bad_rows == 5
    run.refresh_from_db()
    assert QuarantinedRow.objects.filter(run=run).count() == 2
    assert run.status == RunStatus.SUCCEEDED, f"{run.status}: {run.last_error}"
