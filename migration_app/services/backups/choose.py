"""The one place that chooses a backup's method, takes the backup, and restores it by its method.

``LIZZY_BACKUP_METHOD`` (or ``method=``): ``export`` always writes the JSON Lines export; ``native`` always
calls CreateBackup (an error naming the table and endpoint where the endpoint lacks it); ``auto`` takes the
export when it is expected to take less than ``LIZZY_BACKUP_EXPORT_MAX_SECONDS``, else CreateBackup (and the
export after all on an endpoint without CreateBackup). A native backup's count and checksum Scan is taken only
when it is expected to take less than the same limit (0: never); without it a restore is never reported as verified.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from lizzy.dynamodb import BackupsUnsupported, dynamodb_describe_table, dynamodb_endpoint_text, dynamodb_ttl_attribute
from lizzy.errors import ApplicationError, NotFound, ValidationFailed
from migration_app.models import Backup, BackupMethod, BackupState, MigrationPlan
from migration_app.services.backups.base import (
    ERR_TABLE_MISSING,
    BackupError,
    BackupEstimate,
    backup_estimate,
    backup_estimate_cached,
    table_definition,
)
from migration_app.services.backups.export import export_restore, export_take
from migration_app.services.backups.native import native_restore, native_restore_refusal, native_take
from migration_app.services.backups.records import backup_delete

METHODS = ("auto", BackupMethod.NATIVE.value, BackupMethod.EXPORT.value)
ERR_METHOD_UNKNOWN = "Unknown backup method {method!r}; methods are auto, native, export (LIZZY_BACKUP_METHOD)."
ERR_NATIVE_UNSUPPORTED = (
    "Backup of {table}: the method is native, but the DynamoDB endpoint {endpoint} has no on-demand backups "
    "(CreateBackup answered {code}); nothing was backed up. Use the export there (--method export, or "
    "LIZZY_BACKUP_METHOD=auto or export)."
)
ERR_BACKUP_UNFINISHED = (
    "Backup #{id} of {table} was recorded at {at} but never finished (interrupted, or still being taken): it cannot "
    "be restored. `python manage.py backup_table --orphans` lists what it left."
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupChoice:
    """The method a backup of one table will use, why, and the estimate it was chosen from."""

    table: str
    requested: str  # auto | native | export
    method: str  # native | export
    checksummed: bool  # count and checksum taken at backup time (always for an export)
    why: str
    estimate: BackupEstimate

    def text(self) -> str:
        return f"{self.estimate.text()} Method: {self.method} ({self.why})."


def backup_choose(*, table: str, method: str | None = None, segments: int | None = None) -> BackupChoice:
    """Which method a backup of ``table`` takes now, from a fresh estimate and ``LIZZY_BACKUP_METHOD``."""
    _requested(method)  # an unknown method is refused before DynamoDB is asked anything
    return backup_choice(estimate=backup_estimate(table=table, segments=segments), method=method)


def backup_choose_cached(*, table: str, method: str | None = None) -> BackupChoice | None:
    """The choice from the cached estimate (``backup_estimate_cached``), or None; never calls DynamoDB."""
    estimate = backup_estimate_cached(table=table)
    return None if estimate is None else backup_choice(estimate=estimate, method=method)


def _requested(method: str | None) -> str:
    requested = method or settings.LIZZY_BACKUP_METHOD
    if requested not in METHODS:
        raise ValidationFailed(ERR_METHOD_UNKNOWN.format(method=requested))
    return requested


def backup_choice(*, estimate: BackupEstimate, method: str | None = None) -> BackupChoice:
    """The method for ``estimate``'s table under ``method`` (default ``LIZZY_BACKUP_METHOD``), and why."""
    requested = _requested(method)
    table = estimate.table
    limit = settings.LIZZY_BACKUP_EXPORT_MAX_SECONDS
    seconds = estimate.export_seconds
    cheap = seconds < limit
    if requested == BackupMethod.EXPORT:
        return BackupChoice(table, requested, BackupMethod.EXPORT.value, True, "export requested", estimate)
    if requested == BackupMethod.NATIVE:
        why = (
            f"native requested; the count and checksum Scan, about {seconds:,.0f} s < {limit:g} s, is taken"
            if cheap
            else f"native requested; the count and checksum Scan would take about {seconds:,.0f} s >= {limit:g} s "
            "(LIZZY_BACKUP_EXPORT_MAX_SECONDS): not taken, so a restore is only compared with DescribeBackup's "
            "approximate item count and not verified"
        )
        return BackupChoice(table, requested, BackupMethod.NATIVE.value, cheap, why, estimate)
    if cheap:
        why = f"auto: the export takes about {seconds:,.0f} s < LIZZY_BACKUP_EXPORT_MAX_SECONDS ({limit:g} s)"
        return BackupChoice(table, requested, BackupMethod.EXPORT.value, True, why, estimate)
    why = (
        f"auto: the export would take about {seconds:,.0f} s >= LIZZY_BACKUP_EXPORT_MAX_SECONDS ({limit:g} s), so "
        "CreateBackup instead (the export where the endpoint has none); no checksum Scan, so a restore is only "
        "compared with DescribeBackup's approximate item count and not verified"
    )
    return BackupChoice(table, requested, BackupMethod.NATIVE.value, False, why, estimate)


def backup_name_for(backup: Backup) -> str:
    """The BackupName CreateBackup is given: from the record, which holds it before the call, so an on-demand
    backup left by a kill is found by its name (``backup_orphans``). DynamoDB allows [A-Za-z0-9_.-], 3-255."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", backup.table)
    return f"lizzy-{backup.pk}-{backup.created_at:%Y%m%d%H%M%S}-{safe}"[:255]


def backup_table(
    *,
    table: str,
    plan: MigrationPlan | None = None,
    reason: str = "",
    segments: int | None = None,
    method: str | None = None,
    choice: BackupChoice | None = None,
) -> Backup:
    """Back up one table by the chosen method (``choice``, else ``backup_choose``); the Backup recorded.

    The record is written first (state ``taking``, with its BackupName and export path), then the backup is
    taken, then the record is completed (state ``done``). A failure deletes the record and what was made; a kill
    leaves a ``taking`` record that names what may exist (``backup_orphans``, ``backup_table --orphans``).
    """
    choice = choice or backup_choose(table=table, method=method, segments=segments)
    description = dynamodb_describe_table(table=table)
    if description is None:
        raise NotFound(ERR_TABLE_MISSING.format(table=table))
    definition = table_definition(description, dynamodb_ttl_attribute(table=table))
    backup = Backup.objects.create(
        plan=plan,
        table=table,
        reason=reason[:200],
        table_definition=definition,
        method=choice.method,
        state=BackupState.TAKING,
    )
    backup.backup_name = backup_name_for(backup)
    backup.location = "" if choice.method == BackupMethod.NATIVE else str(_export_path(backup))
    Backup.objects.filter(pk=backup.pk).update(backup_name=backup.backup_name, location=backup.location)
    try:
        fields = _take(backup=backup, choice=choice, segments=segments)
    except Exception:
        # An error (a kill or Ctrl-C leaves the `taking` record): no record, and nothing half-made is left (the
        # on-demand backup is found by its name even when CreateBackup's answer was lost).
        try:
            backup_delete(backup=backup)
        except ApplicationError as cleanup:
            logger.warning("backup #%s of %s left as taking: %s", backup.pk, table, cleanup.message)
        raise
    for name, value in {**fields, "state": BackupState.DONE}.items():
        setattr(backup, name, value)
    backup.save()
    return backup


def _take(*, backup: Backup, choice: BackupChoice, segments: int | None) -> dict[str, Any]:
    table = backup.table
    if choice.method != BackupMethod.NATIVE:
        return export_take(table=table, path=Path(backup.location), segments=segments)
    try:
        return native_take(
            table=table, backup_name=backup.backup_name, checksummed=choice.checksummed, segments=segments
        )
    except BackupsUnsupported as exc:
        if choice.requested == BackupMethod.NATIVE:
            message = ERR_NATIVE_UNSUPPORTED.format(
                table=table, endpoint=dynamodb_endpoint_text(), code=(exc.details or {}).get("code")
            )
            raise BackupError(message, details={"table": table}) from exc
        logger.warning("backup of %s: %s; taking the export instead", table, exc.message)
    path = _export_path(backup)
    backup.method, backup.location = BackupMethod.EXPORT, str(path)
    Backup.objects.filter(pk=backup.pk).update(method=backup.method, location=backup.location)
    return export_take(table=table, path=path, segments=segments)


def _export_path(backup: Backup) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", backup.table)
    directory = Path(settings.LIZZY_BACKUP_DIR) / safe
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{backup.created_at:%Y%m%dT%H%M%S%f}-{backup.pk}.jsonl"


def backup_restore_refusal(*, backup: Backup, target_table: str | None = None) -> str | None:
    """Why ``backup_restore`` would refuse this restore before touching anything (a native backup into a table
    that exists), or None."""
    if backup.state != BackupState.DONE:
        return ERR_BACKUP_UNFINISHED.format(
            id=backup.pk, table=backup.table, at=f"{backup.created_at:%Y-%m-%d %H:%M:%S}"
        )
    if backup.method == BackupMethod.NATIVE:
        return native_restore_refusal(backup=backup, target_table=target_table)
    return None


def backup_restore(*, backup: Backup, target_table: str | None = None) -> dict[str, Any]:
    """Restore ``backup`` by its method into ``target_table`` (default: its own table) and verify it.

    The result says ``verified`` (True only for an exact count and checksum match) and ``verified_by``.
    """
    if backup.state != BackupState.DONE:
        raise BackupError(backup_restore_refusal(backup=backup), details={"backup": backup.pk, "table": backup.table})
    if backup.method == BackupMethod.NATIVE:
        return native_restore(backup=backup, target_table=target_table)
    return export_restore(backup=backup, target_table=target_table)


def backup_text(backup: Backup) -> str:
    """One line for the command, the admin and logs: method, where, and what a restore is checked against."""
    where = backup.location if backup.method == BackupMethod.EXPORT else f"AWS backup {backup.aws_backup_arn}"
    extra = (
        f", AWS backup {backup.aws_backup_arn}"
        if backup.method == BackupMethod.EXPORT and backup.aws_backup_arn
        else ""
    )
    if backup.checksummed:
        counted = f"{backup.item_count} items, sha256-sum {backup.checksum}"
    else:
        approximate = backup.native_details.get("approximate_item_count")
        counted = (
            "item count unknown" if approximate is None else f"about {approximate} items"
        ) + " (DescribeBackup, approximate); checksum not taken: a restore will not be verified"
    return f"backup #{backup.pk} of {backup.table} ({backup.method}): {counted}, {where}{extra}"
