"""What the phase machine (services/phases.py) asks of change capture, in three calls.

- entering **backfill**: the slot and publication are created, before the backfill reads a row;
- entering **cutover**: the guard wants the worker caught up (lag under ``LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS``);
  then CDC ends: the slot is dropped, since after cutover the source no longer leads and an unread
  slot would keep its WAL for the whole cleanup wait;
- entering **cleanup**, and every **rollback**: the slot and publication are dropped. A rollback that lands in
  backfill creates a new slot at once, so the backfill run again there is captured from its start.
"""

from __future__ import annotations

from django.conf import settings

from migration_app.cdc.streams import cdc_stream_active, cdc_stream_create, cdc_stream_drop
from migration_app.models import MigrationPlan, Phase, ValidationReport

ERR_CUTOVER_NO_STREAM = "Cutover of a CDC plan needs its change stream; plan {plan} has none (rolled back?)."
ERR_CUTOVER_LAG = (
    "Cutover needs change capture caught up: plan {plan} has applied every change committed up to {lag} ago, "
    "more than LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS ({limit:g} s). Stop writes to the source and wait for the "
    "CDC worker (migration_cdc)."
)
ERR_CUTOVER_NEVER = "Cutover needs change capture caught up: the CDC worker of plan {plan} has never caught up."
ERR_CUTOVER_IN_FLIGHT = (
    " Validation #{report} found {count} key(s) in flight and saw them arrive; it vouches for the source only "
    "as of its snapshots, so changes committed since are DynamoDB's only through the worker."
)


def cdc_before_advance(*, plan: MigrationPlan, to_phase: str) -> None:
    if not plan.cdc:
        return
    if to_phase == Phase.BACKFILL:
        cdc_stream_create(plan=plan)
    elif to_phase in (Phase.CUTOVER, Phase.CLEANUP):
        cdc_stream_drop(plan=plan, reason=f"plan entered {to_phase}")


def cdc_cutover_guard(*, plan: MigrationPlan, error: type[Exception], report: ValidationReport | None = None) -> None:
    """The worker caught up lately (``LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS``). A clean validation with keys in
    flight does not replace this: it checked the source as of its snapshots, not the changes made since."""
    if not plan.cdc:
        return
    stream = cdc_stream_active(plan=plan)
    if stream is None:
        raise error(ERR_CUTOVER_NO_STREAM.format(plan=plan.name))
    lag = stream.lag_seconds
    limit = settings.LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS
    in_flight = ""
    if report is not None and report.in_flight:
        in_flight = ERR_CUTOVER_IN_FLIGHT.format(report=report.pk, count=report.in_flight)
    if lag is None:
        raise error(ERR_CUTOVER_NEVER.format(plan=plan.name) + in_flight)
    if lag > limit:
        raise error(ERR_CUTOVER_LAG.format(plan=plan.name, lag=f"{lag:.1f} s", limit=limit) + in_flight)


def cdc_after_rollback(*, plan: MigrationPlan, reason: str) -> None:
    if not plan.cdc:
        return
    cdc_stream_drop(plan=plan, reason=f"rollback: {reason}")
    if plan.phase == Phase.BACKFILL:
        cdc_stream_create(plan=plan)
