"""Celery tasks: thin wrappers that take ids, load, and call a service.

Every task is idempotent and runs with ``acks_late`` (settings): a worker killed mid-segment leaves the
message unacknowledged, the broker redelivers it, and the segment resumes from its checkpoint. They all
go to the ``migrations`` queue (``CELERY_TASK_ROUTES``) so backfill workers scale apart from the rest.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from migration_app.cdc.worker import cdc_run
from migration_app.models import MigrationPlan, Phase, RunKind
from migration_app.services import runs as run_services
from migration_app.services.plans import plan_context
from migration_app.services.validation import plan_validate

logger = logging.getLogger(__name__)

LOCK_KEY = "migration:lock:{plan}:{job}"  # two beat processes must not schedule one job twice
LOCK_SECONDS = 3600


@shared_task(acks_late=True, reject_on_worker_lost=True)
def backfill_segment_task(segment_id: int) -> int:
    segment = run_services.segment_backfill(segment_id=segment_id)
    return segment.pk


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


@shared_task(acks_late=True)
def validate_task(plan_id: int, mode: str = "full") -> int | None:
    if not cache.add(LOCK_KEY.format(plan=plan_id, job="validate"), "1", LOCK_SECONDS):
        return None
    try:
        return plan_validate(plan=MigrationPlan.objects.get(pk=plan_id), mode=mode).pk
    finally:
        cache.delete(LOCK_KEY.format(plan=plan_id, job="validate"))


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
