"""Phases of a plan, their guards, and rollback.

setup → backfill → parallel → validate → cutover → cleanup. Every forward step backs up each target
table first (the method and expected time and size logged before it starts) and records who, when and why;
rollback restores the backups taken before the phase being left (for a table the plan created, that backup
is empty, so restoring it removes what the plan wrote) and moves the phase back, recorded the same way. A
native backup (CreateBackup) restores only into a new table: rollback refuses while the table exists.

Guards: cutover only with no run in flight and after a clean *full* validation newer than the last run
that wrote to the target (a quick, keys-only validation never counts; one with keys left unsettled is not
clean), and for a CDC plan with the worker's lag under its limit;
cleanup only ``LIZZY_MIGRATION_CLEANUP_WAIT_SECONDS`` after cutover.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lizzy.dynamodb import dynamodb_describe_table
from lizzy.errors import PreconditionFailed, ValidationFailed
from migration_app.cdc.hooks import cdc_after_rollback, cdc_before_advance, cdc_cutover_guard
from migration_app.models import PHASE_ORDER, MigrationPlan, Phase, PhaseTransition, RunStatus, ValidationMode
from migration_app.services.backups import (
    BackupChoice,
    backup_choose,
    backup_restore,
    backup_restore_refusal,
    backup_table,
    backup_text,
)

ERR_PHASE_UNKNOWN = "Unknown phase {phase!r}; phases are {phases}."
ERR_PHASE_ORDER = "Plan {plan} is in {current}; the next phase is {expected}, not {phase}."
ERR_CUTOVER_NO_VALIDATION = (
    "Cutover needs a clean full validation after the last write to the target (the last run that wrote ended {at})."
)
ERR_CUTOVER_QUICK = (
    "Cutover needs a full validation; the latest after the last write (#{report}) is quick (keys only). "
    "Run validate_migration without --quick."
)
ERR_CUTOVER_RUNNING = "Cutover needs every run finished; run #{run} is {status} and may still write."
ERR_CUTOVER_DIRTY = "Cutover needs a clean validation; the latest found {summary}."
ERR_CUTOVER_UNSETTLED = (
    "Cutover needs a clean validation; the latest (#{report}) left {unsettled} key(s) or count(s) unsettled "
    "({reason}): changes still in flight are neither a match nor a difference. Stop writes to the source, wait "
    "for the CDC worker (migration_cdc {plan} --until-idle), then validate again."
)
ERR_CLEANUP_WAIT = "Cleanup is allowed {wait} after cutover, at {allowed:%Y-%m-%d %H:%M:%S} UTC."
ERR_TABLES_MISSING = "Backfill needs the target tables; missing: {tables}. Run setup first."
ERR_TABLES_GONE = (
    "Target table(s) {tables} do not exist any more (a local endpoint forgets its tables when it restarts), so "
    "whatever this plan wrote is gone and its last validation no longer holds. Recreate them with "
    "`python manage.py migration_setup_tables {plan}`, then start the backfill again and validate."
)
ERR_CUTOVER_TABLES_RECREATED = (
    "Cutover needs a clean full validation of the tables as they are now; target table(s) {tables} were created "
    "after the latest one (#{report}). Run the backfill again, then validate."
)
ERR_NOTHING_TO_ROLL_BACK = "Plan {plan} has no phase transition to roll back."
ERR_PHASE_MOVED = "Plan {plan} left {phase} while this change was prepared (now {current}); nothing was recorded."
ERR_REASON_REQUIRED = "A rollback needs a reason (it is recorded with who and when)."
ERR_ROLLBACK_NATIVE = (
    "Plan {plan} cannot roll back from {phase}: backup(s) {backups} of {tables} are native DynamoDB backups, "
    "which RestoreTableFromBackup restores only into a table that does not exist, and {tables} exist. Nothing "
    "was restored and the phase was not moved (the rollback never writes to another table in their place). To "
    "roll back, delete {tables} (the backups keep what they held before {phase}), then roll back again: each "
    "native backup is restored under its table's own name and checked."
)

logger = logging.getLogger(__name__)


class PhaseGuardFailed(PreconditionFailed):
    code = "phase_guard_failed"


def _actor_fields(actor: Any) -> dict[str, Any]:
    if actor is None or isinstance(actor, str):
        return {"actor": None, "actor_name": actor or "system"}
    return {"actor": actor, "actor_name": actor.get_username()}


def tables_created_after(*, descriptions: dict[str, dict[str, Any] | None], when: dt.datetime) -> list[str]:
    """Tables (from their DescribeTable answers) created after ``when``: a validation older than them checked
    other tables, whatever they held (an endpoint restarted and `migration_setup_tables` made them anew)."""
    recreated = []
    for table, description in descriptions.items():
        created = (description or {}).get("CreationDateTime")
        if isinstance(created, (int, float)):
            created = dt.datetime.fromtimestamp(created, tz=dt.UTC)
        if isinstance(created, dt.datetime) and created > when:
            recreated.append(table)
    return recreated


def phase_guard(*, plan: MigrationPlan, to_phase: str, now: dt.datetime | None = None) -> None:
    """Raise PhaseGuardFailed when ``plan`` may not enter ``to_phase`` now."""
    if to_phase not in PHASE_ORDER:
        raise ValidationFailed(ERR_PHASE_UNKNOWN.format(phase=to_phase, phases=", ".join(PHASE_ORDER)))
    current = PHASE_ORDER.index(plan.phase)
    if PHASE_ORDER.index(to_phase) != current + 1:
        expected = PHASE_ORDER[current + 1] if current + 1 < len(PHASE_ORDER) else "none"
        raise PhaseGuardFailed(
            ERR_PHASE_ORDER.format(plan=plan.name, current=plan.phase, expected=expected, phase=to_phase)
        )
    now = now or timezone.now()
    descriptions = {table: dynamodb_describe_table(table=table) for table in plan.target_tables}
    missing = [table for table, description in descriptions.items() if description is None]
    if to_phase == Phase.BACKFILL and missing:
        raise PhaseGuardFailed(ERR_TABLES_MISSING.format(tables=", ".join(missing)))
    if missing:
        # Past setup every phase stands on what the plan wrote to its target tables: gone, nothing holds.
        raise PhaseGuardFailed(ERR_TABLES_GONE.format(tables=", ".join(missing), plan=plan.name))
    if to_phase == Phase.CUTOVER:
        running = plan.runs.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED]).first()
        if running:
            raise PhaseGuardFailed(ERR_CUTOVER_RUNNING.format(run=running.pk, status=running.status))
        # The last write to the target: the end of the last run that wrote anything, whatever its status.
        last_run = plan.runs.filter(items_written__gt=0).order_by("-finished_at").first()
        last_end = last_run.finished_at if last_run else None
        newer = plan.validations.all() if last_end is None else plan.validations.filter(created_at__gt=last_end)
        latest = newer.order_by("-created_at", "-id").first()
        report = newer.filter(mode=ValidationMode.FULL).order_by("-created_at", "-id").first()
        if latest is not None and report is None:
            raise PhaseGuardFailed(ERR_CUTOVER_QUICK.format(report=latest.pk))
        if report is None:
            raise PhaseGuardFailed(ERR_CUTOVER_NO_VALIDATION.format(at=last_end or "never"))
        differences = {
            name: count for name, count in report.summary().items() if name not in ("in_flight", "unsettled")
        }
        if any(differences.values()):
            raise PhaseGuardFailed(ERR_CUTOVER_DIRTY.format(summary=report.summary()))
        if report.unsettled:
            reasons = sorted({sample.get("reason", "") for sample in report.samples.get("unsettled", [])} - {""})
            raise PhaseGuardFailed(
                ERR_CUTOVER_UNSETTLED.format(
                    report=report.pk,
                    unsettled=report.unsettled,
                    reason="; ".join(reasons) or "see the report",
                    plan=plan.name,
                )
            )
        recreated = tables_created_after(descriptions=descriptions, when=report.created_at)
        if recreated:
            raise PhaseGuardFailed(ERR_CUTOVER_TABLES_RECREATED.format(tables=", ".join(recreated), report=report.pk))
        cdc_cutover_guard(plan=plan, error=PhaseGuardFailed, report=report)
    if to_phase == Phase.CLEANUP:
        wait = dt.timedelta(seconds=settings.LIZZY_MIGRATION_CLEANUP_WAIT_SECONDS)
        cutover = plan.transitions.filter(to_phase=Phase.CUTOVER, rollback=False).order_by("-created_at").first()
        allowed = (cutover.created_at if cutover else plan.phase_changed_at) + wait
        if now < allowed:
            raise PhaseGuardFailed(ERR_CLEANUP_WAIT.format(wait=wait, allowed=allowed))


def plan_backup_choices(*, plan: MigrationPlan) -> list[BackupChoice]:
    """The backups a phase change of ``plan`` would take now (existing target tables): method, time, size."""
    return [
        backup_choose(table=table) for table in plan.target_tables if dynamodb_describe_table(table=table) is not None
    ]


def plan_advance(*, plan: MigrationPlan, to_phase: str, actor: Any = None, reason: str = "") -> PhaseTransition:
    """Move a plan one phase forward: guards, then a backup of every existing target table.

    Each backup's method and its expected time and size are logged before any starts, and kept on the
    returned transition (``backup_choices``, ``backup_texts``) for the caller to show.
    """
    phase_guard(plan=plan, to_phase=to_phase)
    cdc_before_advance(plan=plan, to_phase=to_phase)
    choices = plan_backup_choices(plan=plan)
    for choice in choices:
        logger.info("plan %s, before %s, backing up: %s", plan.name, to_phase, choice.text())
    backups = [
        backup_table(table=choice.table, plan=plan, reason=f"before {to_phase}", choice=choice) for choice in choices
    ]
    from_phase = plan.phase
    with transaction.atomic():
        # Compare-and-set on the phase: two advances at once (two admins, two schedulers) both pass the
        # guard on their own copy of the plan; only the first may record a transition.
        now = timezone.now()
        moved = MigrationPlan.objects.filter(pk=plan.pk, phase=from_phase).update(
            phase=to_phase, phase_changed_at=now, updated_at=now
        )
        if not moved:
            current = MigrationPlan.objects.values_list("phase", flat=True).get(pk=plan.pk)
            raise PhaseGuardFailed(ERR_PHASE_MOVED.format(plan=plan.name, phase=from_phase, current=current))
        transition = PhaseTransition.objects.create(
            plan=plan, from_phase=from_phase, to_phase=to_phase, reason=reason, **_actor_fields(actor)
        )
        transition.backups.set(backups)
    plan.phase, plan.phase_changed_at = to_phase, now
    transition.backup_choices = choices
    transition.backup_texts = [backup_text(backup) for backup in backups]
    return transition


def plan_rollback(*, plan: MigrationPlan, actor: Any, reason: str) -> PhaseTransition:
    """Undo the last forward transition: restore its backups (verified), move the phase back.

    A native backup restores only into a table that does not exist: while a target table it would replace
    exists, the rollback is refused before anything is restored (ERR_ROLLBACK_NATIVE says what to do).
    """
    if not reason.strip():
        raise ValidationFailed(ERR_REASON_REQUIRED)
    last = plan.transitions.filter(rollback=False, to_phase=plan.phase).order_by("-created_at", "-id").first()
    if last is None:
        raise PhaseGuardFailed(ERR_NOTHING_TO_ROLL_BACK.format(plan=plan.name))
    backups = list(last.backups.all())
    refused = [backup for backup in backups if backup_restore_refusal(backup=backup)]
    if refused:
        raise PhaseGuardFailed(
            ERR_ROLLBACK_NATIVE.format(
                plan=plan.name,
                phase=plan.phase,
                backups=", ".join(f"#{backup.pk}" for backup in refused),
                tables=", ".join(backup.table for backup in refused),
            ),
            details={"tables": [backup.table for backup in refused]},
        )
    restored = [backup_restore(backup=backup) for backup in backups]
    with transaction.atomic():
        transition = PhaseTransition.objects.create(
            plan=plan,
            from_phase=plan.phase,
            to_phase=last.from_phase,
            rollback=True,
            reason=reason,
            **_actor_fields(actor),
        )
        transition.backups.set(last.backups.all())
        plan.phase, plan.phase_changed_at = last.from_phase, transition.created_at
        plan.save(update_fields=["phase", "phase_changed_at", "updated_at"])
    cdc_after_rollback(plan=plan, reason=reason)
    transition.restored = restored
    return transition
