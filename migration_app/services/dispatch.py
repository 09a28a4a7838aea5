"""Dispatch: hand a run's segments to Celery, and the console's one-call start and resume that do so.

Separate from ``services.runs`` so that the import graph points one way: tasks → runs, dispatch →
tasks → runs (``runs`` never imports ``tasks``).
"""

from __future__ import annotations

from typing import Any

from celery import chord, group

from lizzy.errors import PreconditionFailed
from migration_app.models import MigrationPlan, MigrationRun, Phase, RunKind
from migration_app.services.phases import plan_advance
from migration_app.services.plans import plan_context, plan_setup_tables
from migration_app.services.runs import catch_up_since, run_create, run_reopen
from migration_app.services.validation import validation_parts
from migration_app.tasks import backfill_segment_task, run_failed_task, validation_merge_task, validation_part_task

ERR_START_PHASE = "Plan {plan} is in {phase}; a backfill starts in setup or backfill, a catch-up in parallel."


def run_dispatch(*, run: MigrationRun) -> None:
    """One Celery task per unfinished unit on the migrations queue; units cut later queue themselves.

    No chord: the unit that finishes last closes the run (``runs.segment_run``), and a failing unit ends
    the run ``failed`` itself; ``link_error`` on each unit covers what fails around a unit, so a run never
    stays ``running`` after a task failed.
    """
    pending = list(run.segments.filter(done=False).values_list("pk", flat=True))
    on_error = run_failed_task.s(run_id=run.pk)
    group(backfill_segment_task.s(segment_id).on_error(on_error) for segment_id in pending).apply_async()


def plan_validate_dispatch(*, plan: MigrationPlan, mode: str = "full") -> Any:
    """Validation as Celery tasks: one per Scan segment and per source key range, merged by a chord callback.

    Returns the chord's result; its value is the report's id. Each part holds one page and the digests.
    """
    with plan_context(plan=plan) as context:
        specs = validation_parts(context=context)
    header = [validation_part_task.s(plan.pk, spec, mode) for spec in specs]
    return chord(header)(validation_merge_task.s(plan.pk, mode))


def run_resume(*, run: MigrationRun, max_bad_rows: int | None = None) -> MigrationRun:
    """A failed, paused or cancelled run back to pending, its unfinished units handed to Celery again.

    They continue from their checkpoints: rows already written are not read again. ``max_bad_rows``: as
    ``run_reopen``'s.
    """
    run = run_reopen(run=run, max_bad_rows=max_bad_rows)
    run_dispatch(run=run)
    run.refresh_from_db()
    return run


def plan_backfill_start(*, plan: MigrationPlan, segments: int = 1, actor: Any = None) -> MigrationRun:
    """What ``migrate_to_dynamodb --async`` does, as one call for the ops console.

    Creates missing target tables, moves a plan still in setup to backfill (guarded, backed up), creates
    a backfill run (a catch-up run in the parallel phase) and dispatches its segments to Celery.
    """
    if plan.phase not in (Phase.SETUP, Phase.BACKFILL, Phase.PARALLEL):
        raise PreconditionFailed(ERR_START_PHASE.format(plan=plan.name, phase=plan.phase))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        if plan.phase == Phase.SETUP:
            plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor=actor, reason="backfill started from the console")
        kind = RunKind.CATCH_UP if plan.phase == Phase.PARALLEL else RunKind.BACKFILL
        since = catch_up_since(plan=plan) if kind == RunKind.CATCH_UP else None
        run = run_create(context=context, kind=kind, segments=segments, since=since)
    run_dispatch(run=run)
    run.refresh_from_db()
    return run
