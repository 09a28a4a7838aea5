"""A run paused after its last unit's last checkpoint (before the unit's release) ends with every unit done
and the run ``paused``; resumed from the console (``dispatch.run_resume``) it is ``pending`` forever.

f36e36c removed, at concurrency 1, the look at the run's status after each checkpoint
(``MigrationRun.objects.filter(..., status__in=STOPPED).exists()`` setting ``stopped``). A stop between a
page's checkpoint and the next read was caught there; now the unit's last checkpoint goes through, the page
iterator ends, ``_segment_loop`` releases the unit ``done`` (``_lease_release(lease, done=True)``, fenced but
not conditioned on the run) and ``_run_totals_update(close=True)`` does not close a paused run (only a pending
or running one). ``run_reopen`` puts the run back to ``pending``, ``run_dispatch`` queues one task per unit not
done: none. No task is left to close the run: ``pending``, with every row written, forever. (At concurrency 4
the same window -- the drain after the last checkpoint -- existed before f36e36c; at 1 it is new.)
Promise: "nothing leaves a run running forever"; every stop ends in a run that resume finishes.

Fix: ``run_resume`` (or ``run_reopen``) closes a reopened run that has no unit left (``run_finish``: one
``_run_totals_update(close=True)``) instead of dispatching nothing; or release a unit ``done`` only while its
run is not stopped (the release's UPDATE filtered with ``run_id__in=_runs_not_in(STOPPED)``, as checkpoints).
"""

from __future__ import annotations

import pytest

from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.dispatch import run_resume
from migration_app.services.runs import run_pause, segment_run
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_run_paused_after_its_last_checkpoint_is_finished_by_its_resume(
    sqlite_source, settings, dynamodb, monkeypatch, concurrency
):
    # given one unit of 200 rows in pages of 100, and the operator pausing the run just after the unit's last
    # checkpoint (its last page written and counted)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 200, unit_rows=1000)
    unit = run.segments.get().pk
    checkpoint = runs._UnitPipeline._checkpoint

    def checkpoint_then_pause(self, rows, last_key, outcome):
        checkpoint(self, rows, last_key, outcome)
        if list(last_key) == [200]:  # the unit's last row
            run_pause(run=MigrationRun.objects.get(pk=run.pk))

    monkeypatch.setattr(runs._UnitPipeline, "_checkpoint", checkpoint_then_pause)
    segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    assert run.rows_read == 200

    # when the operator resumes it from the console (Celery: eager in tests)
    resumed = run_resume(run=run)

    # then the resumed run ends (it fails: every unit is done, no task is queued, the run stays pending)
    resumed.refresh_from_db()
    units = list(resumed.segments.values_list("done", flat=True))
    assert resumed.status == RunStatus.SUCCEEDED, f"run {resumed.status} after resume, units done: {units}"
