"""Backups of target tables and verified restores.

Two copies: DynamoDB's on-demand CreateBackup where the endpoint has it (AWS, moto), and always a
JSON Lines export streamed page by page (one canonical DynamoDB-JSON item per line) with its item
count and an order-independent checksum. The export is what restore reads: it works on every endpoint,
into the same table or a new one, and the restored table is checked against the count and checksum.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy.dynamodb import (
    dynamodb_batch_write,
    dynamodb_create_backup,
    dynamodb_create_table,
    dynamodb_describe_table,
    dynamodb_enable_ttl,
    dynamodb_scan_segment,
    dynamodb_ttl_attribute,
    dynamodb_wait_until_active,
)
from lizzy.errors import ApplicationError, NotFound
from migration_app.models import Backup, MigrationPlan
from migration_app.services.canonical import SetChecksum, canonical_text, item_from_json, key_text
from migration_app.services.scans import ERR_BACKUP_UNREADABLE, SCAN_ERRORS, SCAN_PROFILE, scan_unreadable

ERR_TABLE_MISSING = "Table {table} does not exist; there is nothing to back up."
ERR_BACKUP_FILE = "Backup #{id}: the export {path} is missing or unreadable."
ERR_BACKUP_CORRUPT = (
    "Backup #{id}: the export holds {count} items with checksum {checksum}; the record says {expected}."
)
ERR_RESTORE_MISMATCH = "Restore into {table} does not match backup #{id}: {count} items, checksum {checksum}."


class BackupError(ApplicationError):
    code = "backup_error"


def _definition(description: dict[str, Any], ttl_attribute: str | None) -> dict[str, Any]:
    """What CreateTable needs to rebuild the table (keys, GSIs, on demand) and its TTL setting."""
    definition: dict[str, Any] = {
        "AttributeDefinitions": description["AttributeDefinitions"],
        "KeySchema": description["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = [
        {"IndexName": gsi["IndexName"], "KeySchema": gsi["KeySchema"], "Projection": gsi["Projection"]}
        for gsi in description.get("GlobalSecondaryIndexes", [])
    ]
    if indexes:
        definition["GlobalSecondaryIndexes"] = indexes
    return {"create": definition, "ttl_attribute": ttl_attribute}


def backup_table(*, table: str, plan: MigrationPlan | None = None, reason: str = "") -> Backup:
    """Back up one table: CreateBackup if available, and a streamed JSON Lines export."""
    description = dynamodb_describe_table(table=table)
    if description is None:
        raise NotFound(ERR_TABLE_MISSING.format(table=table))
    stamp = timezone.now()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", table)
    directory = Path(settings.LIZZY_BACKUP_DIR) / safe
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp:%Y%m%dT%H%M%S%f}.jsonl"
    arn = dynamodb_create_backup(table=table, name=f"{safe}-{stamp:%Y%m%d%H%M%S}"[:255]) or ""
    checksum = SetChecksum()
    try:
        with path.open("w", encoding="utf-8") as export:
            for item in dynamodb_scan_segment(table=table, consistent=True, profile=SCAN_PROFILE):
                line = canonical_text(item)
                export.write(line + "\n")
                checksum.add_text(line)
    except SCAN_ERRORS as exc:
        path.unlink(missing_ok=True)  # a partial export must never look like a backup
        raise scan_unreadable(exc, table=table, template=ERR_BACKUP_UNREADABLE) from exc
    return Backup.objects.create(
        plan=plan,
        table=table,
        reason=reason[:200],
        location=str(path),
        aws_backup_arn=arn,
        item_count=checksum.count,
        checksum=checksum.hexdigest(),
        table_definition=_definition(description, dynamodb_ttl_attribute(table=table)),
        created_at=stamp,
    )


def _export_items(backup: Backup):
    path = Path(backup.location)
    if not path.is_file():
        raise BackupError(ERR_BACKUP_FILE.format(id=backup.pk, path=path))
    with path.open(encoding="utf-8") as export:
        for line in export:
            if line.strip():
                yield item_from_json(json.loads(line))


def backup_verify(*, backup: Backup) -> None:
    """The export still holds what was recorded (count and checksum)."""
    checksum = SetChecksum()
    for item in _export_items(backup):
        checksum.add(item)
    if checksum.count != backup.item_count or checksum.hexdigest() != backup.checksum:
        raise BackupError(
            ERR_BACKUP_CORRUPT.format(
                id=backup.pk, count=checksum.count, checksum=checksum.hexdigest(), expected=backup.checksum
            )
        )


def table_checksum(*, table: str) -> SetChecksum:
    checksum = SetChecksum()
    for item in dynamodb_scan_segment(table=table, consistent=True, profile=SCAN_PROFILE):
        checksum.add(item)
    return checksum


def backup_restore(*, backup: Backup, target_table: str | None = None) -> dict[str, Any]:
    """Restore an export into ``target_table`` (default: the table it came from), then verify it.

    Into an existing table the result is exactly the backup: items written since are deleted. The
    set of keys in the backup is held in memory for that (keys only).
    """
    backup_verify(backup=backup)
    table = target_table or backup.table
    created = False
    description = dynamodb_describe_table(table=table)
    key_names = tuple(k["AttributeName"] for k in backup.table_definition["create"]["KeySchema"])
    if description is None:
        dynamodb_create_table(table=table, definition=backup.table_definition["create"])
        dynamodb_wait_until_active(table=table)
        ttl = backup.table_definition.get("ttl_attribute")
        if ttl:
            dynamodb_enable_ttl(table=table, attribute=ttl)
        created = True
    deleted = 0
    if not created:
        wanted = {key_text(item, key_names) for item in _export_items(backup)}
        stale = (
            {name: item[name] for name in key_names}
            for item in dynamodb_scan_segment(table=table, consistent=True, profile=SCAN_PROFILE)
            if key_text(item, key_names) not in wanted
        )
        # Collect first: deleting while scanning the same table could skip pages.
        stale_keys = list(stale)
        deleted = len(stale_keys)
        if stale_keys:
            dynamodb_batch_write(table=table, delete_keys=stale_keys, key_names=key_names)
    result = dynamodb_batch_write(table=table, items=_export_items(backup), key_names=key_names)
    checksum = table_checksum(table=table)
    if checksum.count != backup.item_count or checksum.hexdigest() != backup.checksum:
        raise BackupError(
            ERR_RESTORE_MISMATCH.format(table=table, id=backup.pk, count=checksum.count, checksum=checksum.hexdigest())
        )
    return {
        "table": table,
        "created": created,
        "written": result.written,
        "deleted": deleted,
        "verified": True,
        "item_count": checksum.count,
        "checksum": checksum.hexdigest(),
    }
