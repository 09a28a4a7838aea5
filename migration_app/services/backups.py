"""Backups of target tables and verified restores.

Two copies: DynamoDB's on-demand CreateBackup where the endpoint has it (AWS, moto), and always a
JSON Lines export streamed page by page (one canonical DynamoDB-JSON item per line) with its item
count and an order-independent checksum. The export is what restore reads: it works on every endpoint,
into the same table or a new one, and the restored table is checked against the count and checksum.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
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
    dynamodb_parallel_scan,
    dynamodb_scan,
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


ESTIMATE_SAMPLE_ITEMS = 200  # the first Scan page of this many items times the rest


class BackupError(ApplicationError):
    code = "backup_error"


@dataclass(frozen=True)
class BackupEstimate:
    """What a backup of one table will cost, shown before it starts."""

    table: str
    items: int  # DescribeTable's ItemCount (DynamoDB updates it about every six hours)
    table_bytes: int  # DescribeTable's TableSizeBytes
    export_bytes: int  # the JSON Lines export: items × bytes per item of a sample
    export_seconds: float  # items × seconds per item of the sample ÷ segments
    segments: int
    sample_items: int

    def text(self) -> str:
        return (
            f"{self.table}: about {self.items:,} items ({self.table_bytes / 1e6:,.1f} MB in DynamoDB); the JSON "
            f"Lines export with {self.segments} parallel segment(s) takes about {self.export_seconds:,.0f} s and "
            f"{self.export_bytes / 1e6:,.1f} MB (from a {self.sample_items}-item sample; ItemCount is refreshed "
            "by DynamoDB about every six hours). The on-demand backup (CreateBackup, where the endpoint has it) "
            "takes seconds whatever the size and consumes no capacity."
        )


def backup_estimate(*, table: str, segments: int | None = None) -> BackupEstimate:
    """Expected time and size of ``backup_table``, from DescribeTable and one timed sample page."""
    description = dynamodb_describe_table(table=table)
    if description is None:
        raise NotFound(ERR_TABLE_MISSING.format(table=table))
    segments = segments or settings.LIZZY_BACKUP_SEGMENTS
    started = time.perf_counter()
    try:
        page = dynamodb_scan(table=table, limit=ESTIMATE_SAMPLE_ITEMS, consistent=True, profile=SCAN_PROFILE)
    except SCAN_ERRORS as exc:
        raise scan_unreadable(exc, table=table, template=ERR_BACKUP_UNREADABLE) from exc
    sample_bytes = sum(len(canonical_text(item)) + 1 for item in page.items)
    seconds = time.perf_counter() - started
    sampled = max(len(page.items), 1)
    items = int(description.get("ItemCount") or 0)
    return BackupEstimate(
        table=table,
        items=items,
        table_bytes=int(description.get("TableSizeBytes") or 0),
        export_bytes=round(items * sample_bytes / sampled),
        export_seconds=items * seconds / sampled / segments,
        segments=segments,
        sample_items=len(page.items),
    )


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


def backup_table(
    *, table: str, plan: MigrationPlan | None = None, reason: str = "", segments: int | None = None
) -> Backup:
    """Back up one table: CreateBackup if available, and a JSON Lines export read by a parallel Scan.

    ``segments`` (``LIZZY_BACKUP_SEGMENTS``) Scan segments run at once, each streaming its pages into the
    one export file (a line per item, under a lock); the checksum is order-independent, so the order in
    which segments finish does not matter. Memory: one page per segment.
    """
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
