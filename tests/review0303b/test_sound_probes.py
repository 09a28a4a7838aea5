"""Probes that pass on main (evidence of what was checked and found sound): a chained run of two entities
paused part-way (from inside a unit's page handover, the chain's unit taken ahead included) and resumed reads
every row once by its checkpoints and leaves every item in the table, at concurrency 1 and 4 (the open-ended
rest taken first with several entities, the stop seen by ``_renew`` or a checkpoint inside ``_Chain._start``)."""

from __future__ import annotations

import pytest

from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_pause, run_reopen
from tests.review_chain.helpers import drain_queue, two_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("pause_at", [3, 8])
def test_pause_then_resume_of_a_chained_two_entity_run_reads_every_row_once(
    sqlite_source, settings, sent, monkeypatch, concurrency, pause_at
):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 20
    run = two_entity_run(sqlite_source, settings, 230, 170, unit_rows=40)
    write, calls = runs._UnitPipeline.write, []

    def write_then_pause(self, rows, last_key):
        write(self, rows, last_key)
        calls.append(self.unit)
        if len(calls) == pause_at:
            run_pause(run=MigrationRun.objects.get(pk=run.pk))

    monkeypatch.setattr(runs._UnitPipeline, "write", write_then_pause)
    queue = list(run.segments.values_list("pk", flat=True))
    drain_queue(queue)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    assert run.rows_read < 400
    monkeypatch.setattr(runs._UnitPipeline, "write", write)

    run_reopen(run=run)
    queue = list(run.segments.filter(done=False).values_list("pk", flat=True))
    drain_queue(queue)

    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 400, 400)
    assert sum(run.segments.values_list("rows_read", flat=True)) == 400
    expected = {("Things", f"THING#{n}") for n in range(1, 231)} | {("Widgets", f"WIDGET#{n}") for n in range(1, 171)}
    assert set(sent) == expected
