"""What the product made for a backup, found and deleted: the on-demand backup, the export file, the record.

``backup_table`` writes the record first (state ``taking``, with the BackupName CreateBackup will be given and
the export's path), so a process killed between CreateBackup and completing the record leaves a record that
names what may exist. ``backup_orphans`` lists those, and on-demand backups of the same tables that no record
names (taken by an older version, another installation, or by hand: listed, never deleted here).
``backup_delete`` removes a backup and everything it made; the admin's delete calls it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from lizzy.dynamodb import BackupsUnsupported, DynamoDBError, dynamodb_delete_backup, dynamodb_list_backups
from migration_app.models import Backup, BackupState

logger = logging.getLogger(__name__)

ORPHAN_DELETE_AFTER = dt.timedelta(hours=24)  # a `taking` record younger than this may still be running
AWS_DELETE_HINT = "aws dynamodb delete-backup --backup-arn {arn}"


@dataclass(frozen=True)
class BackupOrphan:
    """An interrupted backup (its ``taking`` record and what it left) or an on-demand backup no record names."""

    table: str
    backup: Backup | None  # the `taking` record; None: an on-demand backup that no record names
    aws_backup_arn: str  # "" when DynamoDB holds no backup of that name
    backup_name: str
    location: str  # the export file it left, "" when there is none
    created_at: dt.datetime | None

    def text(self, now: dt.datetime | None = None) -> str:
        made = []
        if self.aws_backup_arn:
            made.append(f"on-demand backup {self.aws_backup_arn}")
        if self.location:
            made.append(f"export file {self.location}")
        left = ", ".join(made) or "nothing in DynamoDB or on disk"
        if self.backup is None:
            return (
                f"{self.table}: on-demand backup {self.backup_name!r} ({self.aws_backup_arn}, created "
                f"{self.created_at}) is named by no backup record here (an older version, another installation, or "
                f"by hand): not deleted by Lizzy; `{AWS_DELETE_HINT.format(arn=self.aws_backup_arn)}` if unwanted"
            )
        age = (now or timezone.now()) - self.backup.created_at
        running = " (may still be running)" if age < ORPHAN_DELETE_AFTER else ""
        return (
            f"{self.table}: backup #{self.backup.pk} ({self.backup.method}, name {self.backup_name}) was recorded at "
            f"{self.backup.created_at:%Y-%m-%d %H:%M:%S} and never finished{running}; it left {left}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "backup": None if self.backup is None else self.backup.pk,
            "aws_backup_arn": self.aws_backup_arn,
            "backup_name": self.backup_name,
            "location": self.location,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }


def _summaries(table: str) -> list[dict[str, Any]]:
    try:
        return dynamodb_list_backups(table=table)
    except BackupsUnsupported:
        return []  # an endpoint without on-demand backups holds none


def _arns_named(backup: Backup) -> list[str]:
    if backup.aws_backup_arn:
        return [backup.aws_backup_arn]
    if not backup.backup_name:
        return []
    return [s["BackupArn"] for s in _summaries(backup.table) if s.get("BackupName") == backup.backup_name]


def backup_orphans(*, table: str | None = None) -> list[BackupOrphan]:
    """Interrupted backups (``taking`` records, with the on-demand backup found by name and the export file left)
    and on-demand backups of the recorded tables that no record names; of ``table`` only when given."""
    records = Backup.objects.all() if table is None else Backup.objects.filter(table=table)
    taking = list(records.filter(state=BackupState.TAKING).order_by("created_at", "id"))
    tables = sorted({table} if table else set(Backup.objects.values_list("table", flat=True)))
    recorded_arns = set(Backup.objects.exclude(aws_backup_arn="").values_list("aws_backup_arn", flat=True))
    taking_names = {(backup.table, backup.backup_name) for backup in taking}
    summaries = {name: _summaries(name) for name in tables}
    orphans = []
    for backup in taking:
        arns = [s["BackupArn"] for s in summaries.get(backup.table, []) if s.get("BackupName") == backup.backup_name]
        location = backup.location if backup.location and Path(backup.location).exists() else ""
        orphans.append(
            BackupOrphan(
                table=backup.table,
                backup=backup,
                aws_backup_arn=backup.aws_backup_arn or (arns[0] if arns else ""),
                backup_name=backup.backup_name,
                location=location,
                created_at=backup.created_at,
            )
        )
    for name in tables:
        for summary in summaries[name]:
            if summary["BackupArn"] in recorded_arns or (name, summary.get("BackupName")) in taking_names:
                continue
            orphans.append(
                BackupOrphan(
                    table=name,
                    backup=None,
                    aws_backup_arn=summary["BackupArn"],
                    backup_name=summary.get("BackupName", ""),
                    location="",
                    created_at=summary.get("BackupCreationDateTime"),
                )
            )
    return orphans


def backup_delete(*, backup: Backup) -> dict[str, Any]:
    """Delete ``backup`` and what it made: its on-demand backup (by ARN, or by its BackupName when the record was
    never completed), its export file, then the record. What was deleted, for the caller to report."""
    deleted_arns = []
    for arn in _arns_named(backup):
        try:
            dynamodb_delete_backup(table=backup.table, arn=arn)
        except BackupsUnsupported:
            continue
        except DynamoDBError as exc:
            if getattr(exc, "aws_code", "") != "BackupNotFoundException":
                raise  # the record stays: it still names what could not be deleted
        deleted_arns.append(arn)
    deleted_file = ""
    if backup.location and Path(backup.location).exists():
        Path(backup.location).unlink()
        deleted_file = backup.location
    result = {
        "backup": backup.pk,
        "table": backup.table,
        "deleted_aws_backups": deleted_arns,
        "deleted_file": deleted_file,
    }
    backup.delete()
    logger.info("backup #%s of %s deleted with what it made: %s", result["backup"], backup.table, result)
    return result


def backup_orphans_delete(
    *, table: str | None = None, older_than: dt.timedelta = ORPHAN_DELETE_AFTER
) -> list[dict[str, Any]]:
    """Delete the interrupted backups recorded more than ``older_than`` ago, with what they left. On-demand backups
    that no record names are not touched (they may be someone else's)."""
    cutoff = timezone.now() - older_than
    return [
        backup_delete(backup=orphan.backup)
        for orphan in backup_orphans(table=table)
        if orphan.backup is not None and orphan.backup.created_at < cutoff
    ]
