"""Celery tasks: thin wrappers that take ids, load, and call a service.

Every task is idempotent and runs with ``acks_late`` (settings): a worker killed mid-segment leaves the
message unacknowledged, the broker redelivers it, and the segment resumes from its checkpoint. They all
go to the ``migrations`` queue (``CELERY_TASK_ROUTES``) so backfill workers scale apart from the rest.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chord, shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from migration_app.cdc.worker import cdc_run
from migration_app.models import MigrationPlan, Phase, RunKind, Segment
from migration_app.services import runs as run_services
from migration_app.services.plans import plan_context
from migration_app.services.validation import plan_validate, validation_merge, validation_part_run, validation_parts

logger = logging.getLogger(__name__)

LOCK_KEY = "migration:lock:{plan}:{job}"  # two beat processes must not schedule one job twice
LOCK_SECONDS = 3600


# No result stored on success (nothing reads it; the unit's row and the run are the record): the result
# backend is the control database, a write of several round trips at every unit boundary. A failure's
# result is stored (scrubbed, for the admin) and ``link_error`` callbacks run either way.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
    store_errors_even_if_ignored=True,
)
def backfill_segment_task(self, segment_id: int) -> int:
    """One work unit under a lease; a failure ends its run ``failed`` before the exception reaches Celery.

    A unit another runner holds (a redelivered message, a second invocation) is not worked on: the task
    looks again once that lease would expire, and then finds the unit done, or takes over a dead runner's.
    Units this one cuts off are queued as tasks of their own. The run's next free units follow this one
    in this task for ``LIZZY_MIGRATION_CHAIN_SECONDS`` (each taken while the one before drains; their own
    messages then find them done); not when run eagerly, where a queued unit runs inside its cut.
    """
    chain = 0.0 if self.request.is_eager else settings.LIZZY_MIGRATION_CHAIN_SECONDS
    try:
        return run_services.segment_run(segment_id=segment_id, on_unit=_queue_unit, chain_seconds=chain).pk
    except run_services.UnitLeased as exc:
        if exc.details["done"] or self.request.is_eager:
            return segment_id
        expires = exc.details["expires_at"]
        countdown = max((expires - timezone.now()).total_seconds(), 0) + 1 if expires else 1
        raise self.retry(countdown=countdown) from exc


def _queue_unit(unit: Segment) -> None:
    backfill_segment_task.apply_async((unit.pk,), link_error=run_failed_task.s(run_id=unit.run_id))


@shared_task
def run_failed_task(request: Any, exc: BaseException | None = None, traceback: Any = None, *, run_id: int) -> str:
    """Error callback (``link_error``) of every unit task: whatever failed a task fails its run.

    ``segment_run`` already does this for failures inside the unit; this also catches what happens around
    it (a task that could not even start, a time limit).
    """
    problem = f"{type(exc).__name__}: {exc}" if exc is not None else "a unit task failed"
    return run_services.run_fail(run_id=run_id, error=f"unit task {getattr(request, 'id', request)}: {problem}").status


@shared_task(acks_late=True)
def run_finish_task(_results: list[int] | None, run_id: int) -> str:
    return run_services.run_finish(run_id=run_id).status


@shared_task(acks_late=True)
def catch_up_task(plan_id: int, segments: int = 1) -> int | None:
    plan = MigrationPlan.objects.get(pk=plan_id)
    if not cache.add(LOCK_KEY.format(plan=plan_id, job="catch-up"), "1", LOCK_SECONDS):
        logger.info("catch-up of plan %s already running; skipped", plan_id)
        return None
    try:
        pending = run_services.run_pending(plan=plan)
        with plan_context(plan=plan) as context:
            run = pending or run_services.run_create(
                context=context,
                kind=RunKind.CATCH_UP,
                segments=segments,
                since=run_services.catch_up_since(plan=plan),
            )
            run_services.run_execute(run=run, context=context)
        return run.pk
    finally:
        cache.delete(LOCK_KEY.format(plan=plan_id, job="catch-up"))


@shared_task(bind=True, acks_late=True)
def validate_task(self, plan_id: int, mode: str = "full", distributed: bool | None = None) -> int | None:
    """Validate a plan (admin, API, beat). One at a time per plan: a second request while one runs is skipped.

    ``distributed`` (default ``LIZZY_VALIDATION_DISTRIBUTED``): the parts (Scan segments, source key ranges)
    run as Celery tasks on the migrations queue and a chord callback merges them into the report and
    releases the plan's validation lock; returns the report's id when the chord ran inline (eager Celery),
    else None (the report appears when the last part is merged). Otherwise the parts run in this process.
    """
    lock = LOCK_KEY.format(plan=plan_id, job="validate")
    if not cache.add(lock, "1", LOCK_SECONDS):
        logger.info("validation of plan %s already running; skipped", plan_id)
        return None
    plan = MigrationPlan.objects.get(pk=plan_id)
    if distributed is None:
        distributed = settings.LIZZY_VALIDATION_DISTRIBUTED
    if not distributed:
        try:
            return plan_validate(plan=plan, mode=mode).pk
        finally:
            cache.delete(lock)
    try:
        with plan_context(plan=plan) as context:
            specs = validation_parts(context=context)
        merge = validation_merge_task.s(plan_id, mode, release_lock=True).on_error(
            validation_failed_task.s(plan_id=plan_id)
        )
        result = chord(validation_part_task.s(plan_id, spec, mode) for spec in specs)(merge)
    except Exception:
        cache.delete(lock)  # nothing was queued (or the chord could not be sent): the next request may start
        raise
    return result.get(disable_sync_subtasks=False) if self.request.is_eager else None


@shared_task(acks_late=True)
def validation_part_task(plan_id: int, spec: dict[str, Any], mode: str = "full") -> dict[str, Any]:
    """One part of a distributed validation (a Scan segment or a source key range): its digests."""
    with plan_context(plan=MigrationPlan.objects.get(pk=plan_id)) as context:
        return validation_part_run(context=context, spec=spec, mode=mode)


@shared_task(acks_late=True)
def validation_merge_task(
    parts: list[dict[str, Any]], plan_id: int, mode: str = "full", release_lock: bool = False
) -> int:
    """The chord's callback: the parts' digests merged into one report (differing buckets detailed)."""
    try:
        with plan_context(plan=MigrationPlan.objects.get(pk=plan_id)) as context:
            return validation_merge(context=context, parts=parts, mode=mode).pk
    finally:
        if release_lock:
            cache.delete(LOCK_KEY.format(plan=plan_id, job="validate"))


@shared_task
def validation_failed_task(
    request: Any, exc: BaseException | None = None, traceback: Any = None, *, plan_id: int
) -> str:
    """Error callback of a distributed validation: a part or the merge failed; no report, the lock goes."""
    cache.delete(LOCK_KEY.format(plan=plan_id, job="validate"))
    # The exception's text may quote source values: the log names its type and the task whose result holds it.
    problem = type(exc).__name__ if exc is not None else "a validation task failed"
    task = getattr(request, "id", request)
    logger.error("distributed validation of plan %s failed in task %s: %s; no report was made", plan_id, task, problem)
    return problem


@shared_task(acks_late=True)
def cdc_task(plan_id: int, max_seconds: float | None = None) -> dict:
    """The CDC worker as a Celery task (a long-running one: give it a queue of its own, docs/MIGRATIONS.md)."""
    return cdc_run(plan=MigrationPlan.objects.get(pk=plan_id), max_seconds=max_seconds).as_dict()


@shared_task
def scheduled_catch_ups_task() -> list[int]:
    """Beat: every plan in the parallel phase copies the rows changed since its last run (CDC plans do not)."""
    plans = list(MigrationPlan.objects.filter(phase=Phase.PARALLEL, cdc=False).values_list("pk", flat=True))
    for plan_id in plans:
        catch_up_task.delay(plan_id)
    return plans


@shared_task
def scheduled_validations_task() -> list[int]:
    """Beat: plans running in parallel or awaiting cutover are validated on a schedule."""
    plans = list(MigrationPlan.objects.filter(phase__in=[Phase.PARALLEL, Phase.VALIDATE]).values_list("pk", flat=True))
    for plan_id in plans:
        validate_task.delay(plan_id)
    return plans
