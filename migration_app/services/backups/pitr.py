"""Restore a table as it was at a point in time (RestoreTableToPointInTime), always into a new table.

Point-in-time recovery is switched on by plan setup (``backup_pitr_enable``); DynamoDB then keeps every state of
the table from ``EarliestRestorableDateTime`` to ``LatestRestorableDateTime`` (typically five minutes ago). The
restore never touches the live table: DynamoDB only creates a new one, and the same name is refused before
anything is asked. The time is checked against the window first, so the error names the table, the time, the
window and the endpoint; DynamoDB's own refusals (the window moved, PITR switched off meanwhile) say the same.

What it is verified against: nothing exact. DynamoDB keeps no item count or checksum of a table at a past time,
and this product only has them for its own backups, taken at their own moments. The restored table is counted and
checksummed (given in the result, to compare with a backup or the source) and the result says ``verified: false``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lizzy.dynamodb import (
    BackupsUnsupported,
    DynamoDBError,
    dynamodb_describe_table,
    dynamodb_enable_ttl,
    dynamodb_endpoint_text,
    dynamodb_point_in_time_recovery,
    dynamodb_restore_table_to_point_in_time,
    dynamodb_ttl_attribute,
    dynamodb_wait_until_active,
)
from migration_app.services.backups.base import BackupError, table_checksum
from migration_app.services.backups.native import RESTORE_WAIT_SECONDS

METHOD_POINT_IN_TIME = "point_in_time"
LATEST = "latest"
VERIFIED_BY_NOTHING = (
    "nothing exact: DynamoDB keeps no item count or checksum of a table at a past time; the restored table's own "
    "count and checksum are given, to compare with a backup or the source"
)

_WHERE = "Point-in-time restore of {source} at {when} into {table} ({endpoint}): "
ERR_PITR_SAME_TABLE = _WHERE + (
    "a point-in-time restore never writes over the live table; name a new table (--target-table NEW_NAME)."
)
ERR_PITR_SOURCE_MISSING = _WHERE + "table {source} does not exist; nothing was restored."
ERR_PITR_TARGET_EXISTS = _WHERE + (
    "{table} exists, and DynamoDB restores only into a new table; nothing was restored. Name a new table, or "
    "delete {table} first."
)
ERR_PITR_UNSUPPORTED = _WHERE + "the endpoint has no point-in-time recovery ({code}); nothing was restored."
ERR_PITR_OFF = _WHERE + (
    "point-in-time recovery is {status} for {source}, so DynamoDB holds no earlier state of it; nothing was "
    "restored. Plan setup switches it on (LIZZY_BACKUP_PITR); it covers only the time since."
)
ERR_PITR_OUTSIDE = _WHERE + (
    "the time is outside the restorable window, {earliest} to {latest} (the latest is typically five minutes "
    "ago); nothing was restored."
)


def _text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None if value is None else str(value)


def backup_restore_point_in_time(*, table: str, target_table: str, when: dt.datetime | None) -> dict[str, Any]:
    """RestoreTableToPointInTime of ``table`` at ``when`` (an aware datetime; None: the latest restorable time)
    into ``target_table``, which must not exist; wait until ACTIVE, set TTL as the source has it (DynamoDB does not
    restore TTL), then count and checksum the restored table. Never ``verified``: see the module's docstring."""
    names = {
        "source": table,
        "table": target_table,
        "when": LATEST if when is None else when.isoformat(),
        "endpoint": dynamodb_endpoint_text(),
    }
    details = {"table": target_table, "source": table, "point_in_time": names["when"]}
    if target_table == table:
        raise BackupError(ERR_PITR_SAME_TABLE.format(**names), details=details)
    if dynamodb_describe_table(table=table) is None:
        raise BackupError(ERR_PITR_SOURCE_MISSING.format(**names), details=details)
    if dynamodb_describe_table(table=target_table) is not None:
        raise BackupError(ERR_PITR_TARGET_EXISTS.format(**names), details=details)
    try:
        pitr = dynamodb_point_in_time_recovery(table=table)
    except BackupsUnsupported as exc:
        code = (exc.details or {}).get("code")
        raise BackupError(ERR_PITR_UNSUPPORTED.format(**names, code=code), details=details) from exc
    status = pitr.get("PointInTimeRecoveryStatus", "unknown")
    if status != "ENABLED":
        raise BackupError(ERR_PITR_OFF.format(**names, status=status), details=details)
    earliest, latest = pitr.get("EarliestRestorableDateTime"), pitr.get("LatestRestorableDateTime")
    window = {"earliest": _text(earliest), "latest": _text(latest)}
    if when is not None and earliest is not None and latest is not None and not earliest <= when <= latest:
        raise BackupError(ERR_PITR_OUTSIDE.format(**names, **window), details={**details, **window})
    ttl = dynamodb_ttl_attribute(table=table)
    try:
        description = dynamodb_restore_table_to_point_in_time(source=table, table=target_table, when=when)
    except BackupsUnsupported as exc:
        code = (exc.details or {}).get("code")
        raise BackupError(ERR_PITR_UNSUPPORTED.format(**names, code=code), details=details) from exc
    except DynamoDBError as exc:
        code = getattr(exc, "aws_code", "")
        if code == "InvalidRestoreTimeException":  # the window moved between the check and the call
            raise BackupError(ERR_PITR_OUTSIDE.format(**names, **window), details=details) from exc
        if code == "PointInTimeRecoveryUnavailableException":
            raise BackupError(ERR_PITR_OFF.format(**names, status=code), details=details) from exc
        if code in {"TableAlreadyExistsException", "TableInUseException"}:  # another restore won the race
            raise BackupError(ERR_PITR_TARGET_EXISTS.format(**names), details=details) from exc
        raise
    dynamodb_wait_until_active(table=target_table, timeout_seconds=RESTORE_WAIT_SECONDS)
    if ttl:
        dynamodb_enable_ttl(table=target_table, attribute=ttl)
    checksum = table_checksum(table=target_table)
    return {
        "table": target_table,
        "source": table,
        "method": METHOD_POINT_IN_TIME,
        "point_in_time": names["when"],
        "restore_date_time": _text(description.get("RestoreSummary", {}).get("RestoreDateTime")),
        "restorable_window": window,
        "created": True,
        "written": 0,
        "deleted": 0,
        "verified": False,
        "verified_by": VERIFIED_BY_NOTHING,
        "item_count": checksum.count,
        "checksum": checksum.hexdigest(),
        "expected_item_count": None,
        "expected_checksum": None,
    }
