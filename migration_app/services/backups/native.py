"""The ``native`` method: DynamoDB's on-demand backup (CreateBackup), restored by RestoreTableFromBackup.

CreateBackup copies a table of any size in seconds without consuming capacity; what it returns cannot prove a
restore right, so the backup's own count and checksum come from a parallel Scan at backup time, taken only when
that Scan is cheap (``backup_choose``). DescribeBackup's details (status, size, the source's ItemCount, which
AWS documents as approximate) and the table's point-in-time-recovery status are recorded either way.

RestoreTableFromBackup only creates a new table: restoring into a table that exists is refused, with what to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.conf import settings

from lizzy.dynamodb import (
    BackupsUnsupported,
    DynamoDBError,
    dynamodb_create_backup,
    dynamodb_describe_backup,
    dynamodb_describe_table,
    dynamodb_enable_point_in_time_recovery,
    dynamodb_enable_ttl,
    dynamodb_endpoint_text,
    dynamodb_point_in_time_recovery,
    dynamodb_restore_table_from_backup,
    dynamodb_wait_until_active,
)
from migration_app.models import Backup, BackupMethod
from migration_app.services.backups.base import BackupError, restore_verification, table_checksum
from migration_app.services.canonical import SetChecksum
from migration_app.services.scans import ERR_BACKUP_UNREADABLE, SCAN_ERRORS, scan_unreadable

ERR_NATIVE_TARGET_EXISTS = (
    "Backup #{id} of {source} is a native DynamoDB backup: RestoreTableFromBackup only creates a new table, and "
    "{table} exists, so nothing was restored. Restore into a new table (`python manage.py restore_table {id} "
    "--target-table NEW_NAME`) and point the application at it, or delete {table} first and restore again under "
    "its own name."
)
ERR_NATIVE_NOT_AVAILABLE = (
    "Backup #{id} of {source}: DynamoDB reports the on-demand backup {arn} as {status}, not AVAILABLE; nothing "
    "was restored."
)
ERR_NATIVE_GONE = (
    "Backup #{id} of {source}: DynamoDB has no on-demand backup {arn} any more (deleted, or another account or "
    "region: {endpoint}); nothing was restored."
)
PITR_UNSUPPORTED = "unsupported"  # the endpoint has no point-in-time recovery (DynamoDB Local)
PITR_OFF = "off (LIZZY_BACKUP_PITR)"

logger = logging.getLogger(__name__)

# A new backup is CREATING for a moment (longer for a large table) before it can be restored.
BACKUP_AVAILABLE_WAIT_SECONDS = 600
# DynamoDB takes a restore of a large table a long while (hours for hundreds of GB); the wait is bounded.
RESTORE_WAIT_SECONDS = 12 * 3600


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def backup_pitr_enable(*, table: str) -> str:
    """Switch point-in-time recovery on for ``table`` where the endpoint has it (``LIZZY_BACKUP_PITR``); the
    status: ENABLED, ``PITR_UNSUPPORTED``, ``PITR_OFF``, or the error of an endpoint that refused it for now
    (AWS answers ContinuousBackupsUnavailableException for a while after CreateTable: the next setup retries)."""
    if not settings.LIZZY_BACKUP_PITR:
        return PITR_OFF
    try:
        return dynamodb_enable_point_in_time_recovery(table=table)
    except BackupsUnsupported:
        return PITR_UNSUPPORTED
    except DynamoDBError as exc:
        if getattr(exc, "aws_code", "") != "ContinuousBackupsUnavailableException":
            raise
        logger.warning("point-in-time recovery on %s not enabled yet: %s", table, exc.message)
        return f"not enabled yet ({exc.aws_code}); run setup again"


def _pitr_status(table: str) -> dict[str, Any]:
    try:
        pitr = dynamodb_point_in_time_recovery(table=table)
    except BackupsUnsupported:
        return {"pitr_status": PITR_UNSUPPORTED}
    return {
        "pitr_status": pitr.get("PointInTimeRecoveryStatus", "unknown"),
        "pitr_earliest_restorable": _iso(pitr.get("EarliestRestorableDateTime")),
        "pitr_latest_restorable": _iso(pitr.get("LatestRestorableDateTime")),
    }


def native_take(*, table: str, backup_name: str, checksummed: bool, segments: int | None) -> dict[str, Any]:
    """CreateBackup (raises BackupsUnsupported where the endpoint lacks it), then the details; the Backup fields.

    With ``checksummed`` a parallel Scan counts and checksums the table right after CreateBackup. A write in
    between makes a later restore report a mismatch (a false alarm, never a false "verified").
    """
    arn = dynamodb_create_backup(table=table, name=backup_name)
    checksum: SetChecksum | None = None
    if checksummed:
        try:
            checksum = table_checksum(table=table, segments=segments)
        except SCAN_ERRORS as exc:
            raise scan_unreadable(exc, table=table, template=ERR_BACKUP_UNREADABLE) from exc
    description = dynamodb_describe_backup(table=table, arn=arn)
    details = description.get("BackupDetails", {})
    source = description.get("SourceTableDetails", {})
    return {
        "method": BackupMethod.NATIVE,
        "location": "",
        "aws_backup_arn": arn,
        "item_count": None if checksum is None else checksum.count,
        "checksum": "" if checksum is None else checksum.hexdigest(),
        "native_details": {
            "backup_name": details.get("BackupName", backup_name),
            "backup_status": details.get("BackupStatus"),
            "backup_size_bytes": details.get("BackupSizeBytes"),
            "backup_created_at": _iso(details.get("BackupCreationDateTime")),
            "approximate_item_count": source.get("ItemCount"),
            "approximate_table_bytes": source.get("TableSizeBytes"),
            **_pitr_status(table),
        },
    }


def native_restore_refusal(*, backup: Backup, target_table: str | None = None) -> str | None:
    """Why restoring ``backup`` into ``target_table`` (default: its own table) would be refused, or None."""
    table = target_table or backup.table
    if dynamodb_describe_table(table=table) is not None:
        return ERR_NATIVE_TARGET_EXISTS.format(id=backup.pk, source=backup.table, table=table)
    return None


def _wait_until_available(backup: Backup) -> None:
    """Until DescribeBackup says AVAILABLE (a CREATING backup cannot be restored yet); a backup that is gone or
    DELETED is an error naming it."""
    deadline = time.monotonic() + BACKUP_AVAILABLE_WAIT_SECONDS
    delay = 0.2
    while True:
        try:
            details = dynamodb_describe_backup(table=backup.table, arn=backup.aws_backup_arn)["BackupDetails"]
        except DynamoDBError as exc:
            if getattr(exc, "aws_code", "") != "BackupNotFoundException":
                raise
            message = ERR_NATIVE_GONE.format(
                id=backup.pk, source=backup.table, arn=backup.aws_backup_arn, endpoint=dynamodb_endpoint_text()
            )
            raise BackupError(message) from exc
        status = details.get("BackupStatus")
        if status == "AVAILABLE":
            return
        if status != "CREATING" or time.monotonic() > deadline:
            raise BackupError(
                ERR_NATIVE_NOT_AVAILABLE.format(
                    id=backup.pk, source=backup.table, arn=backup.aws_backup_arn, status=status
                )
            )
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def native_restore(*, backup: Backup, target_table: str | None = None) -> dict[str, Any]:
    """RestoreTableFromBackup into a table that does not exist (default: the backup's own, once deleted), wait
    until ACTIVE, set TTL again (DynamoDB does not restore it), then count and checksum the restored table."""
    table = target_table or backup.table
    refusal = native_restore_refusal(backup=backup, target_table=table)
    if refusal:
        raise BackupError(refusal, details={"table": table, "backup": backup.pk})
    _wait_until_available(backup)
    try:
        dynamodb_restore_table_from_backup(table=table, arn=backup.aws_backup_arn)
    except DynamoDBError as exc:
        if getattr(exc, "aws_code", "") in {"TableAlreadyExistsException", "TableInUseException"}:
            # another restore (or CreateTable) of the same name won the race
            raise BackupError(
                ERR_NATIVE_TARGET_EXISTS.format(id=backup.pk, source=backup.table, table=table),
                details={"table": table, "backup": backup.pk},
            ) from exc
        raise
    dynamodb_wait_until_active(table=table, timeout_seconds=RESTORE_WAIT_SECONDS)
    ttl = backup.table_definition.get("ttl_attribute")
    if ttl:
        dynamodb_enable_ttl(table=table, attribute=ttl)
    verification = restore_verification(backup=backup, table=table, checksum=table_checksum(table=table))
    return {
        "table": table,
        "method": BackupMethod.NATIVE.value,
        "created": True,
        "written": 0,
        "deleted": 0,
        **verification,
    }
