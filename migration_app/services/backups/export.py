"""The ``export`` method: a JSON Lines file written by a parallel Scan, restorable into any table on any endpoint.

One canonical DynamoDB-JSON item per line, with its item count and an order-independent checksum. The export
is what restore reads: into the same table or a new one, and the restored table is checked against the count
and checksum. One method per backup: an export takes no on-demand copy (CreateBackup) beside it, so it leaves
nothing in DynamoDB to pay for or to delete.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from lizzy.dynamodb import (
    dynamodb_batch_write,
    dynamodb_create_table,
    dynamodb_describe_table,
    dynamodb_enable_ttl,
    dynamodb_parallel_scan,
    dynamodb_scan_segment,
    dynamodb_wait_until_active,
)
from migration_app.models import Backup, BackupMethod
from migration_app.services.backups.base import BackupError, restore_verification, table_checksum
from migration_app.services.canonical import SetChecksum, canonical_text, item_from_json, key_text
from migration_app.services.scans import ERR_BACKUP_UNREADABLE, SCAN_ERRORS, SCAN_PROFILE, scan_unreadable

ERR_BACKUP_FILE = "Backup #{id}: the export {path} is missing or unreadable."
ERR_BACKUP_CORRUPT = (
    "Backup #{id}: the export holds {count} items with checksum {checksum}; the record says {expected}."
)

logger = logging.getLogger(__name__)


def export_take(*, table: str, path: Path, segments: int | None) -> dict[str, Any]:
    """Write the export of ``table`` to ``path``; the Backup fields it fills.

    ``segments`` (``LIZZY_BACKUP_SEGMENTS``) Scan segments run at once, each streaming its pages into the
    one export file (a line per item, under a lock); the checksum is order-independent, so the order in
    which segments finish does not matter. Memory: one page per segment.
    """
    checksum = SetChecksum()
    lock = threading.Lock()
    try:
        with path.open("w", encoding="utf-8") as export:

            def consume(items: list[dict[str, Any]]) -> None:
                lines = [canonical_text(item) for item in items]
                with lock:
                    for line in lines:
                        export.write(line + "\n")
                        checksum.add_text(line)

            dynamodb_parallel_scan(
                table=table,
                total_segments=segments or settings.LIZZY_BACKUP_SEGMENTS,
                consume=consume,
                consistent=True,
                profile=SCAN_PROFILE,
            )
    except SCAN_ERRORS as exc:
        path.unlink(missing_ok=True)  # a partial export must never look like a backup
        raise scan_unreadable(exc, table=table, template=ERR_BACKUP_UNREADABLE) from exc
    return {
        "method": BackupMethod.EXPORT,
        "location": str(path),
        "item_count": checksum.count,
        "checksum": checksum.hexdigest(),
    }


def _export_items(backup: Backup):
    path = Path(backup.location)
    if not backup.location or not path.is_file():
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


def export_restore(*, backup: Backup, target_table: str | None = None) -> dict[str, Any]:
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
    verification = restore_verification(backup=backup, table=table, checksum=table_checksum(table=table))
    return {
        "table": table,
        "method": BackupMethod.EXPORT.value,
        "created": created,
        "written": result.written,
        "deleted": deleted,
        **verification,
    }
