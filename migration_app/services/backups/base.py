"""What every backup method shares: errors, the estimate shown before starting, checksums and verification.

A restore is *verified* only when the restored table's item count and order-independent checksum equal the
ones taken by a Scan at backup time. Anything weaker (a native backup too large for that Scan: compared with
DescribeBackup's ItemCount, which AWS documents as approximate) says so and is never reported as verified.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django.utils.connection import ConnectionProxy

from lizzy.dynamodb import dynamodb_describe_table, dynamodb_parallel_scan, dynamodb_scan
from lizzy.errors import ApplicationError, NotFound
from migration_app.models import Backup
from migration_app.services.canonical import SetChecksum, canonical_text
from migration_app.services.scans import ERR_BACKUP_UNREADABLE, SCAN_ERRORS, SCAN_PROFILE, scan_unreadable

ERR_TABLE_MISSING = "Table {table} does not exist; there is nothing to back up."
ERR_RESTORE_MISMATCH = (
    "Restore into {table} is NOT verified against backup #{id}: the restored table holds {count} items with "
    "checksum {checksum}; at backup time a Scan found {expected_count} items with checksum {expected_checksum}. "
    "Table {table} was left as restored, for inspection."
)

VERIFIED_BY_CHECKSUM = "item count and checksum taken at backup time (exact)"
VERIFIED_BY_APPROXIMATE = "item count vs DescribeBackup (approximate)"

logger = logging.getLogger(__name__)
# The shared cache (lizzy/settings/base.py, SHARED_CACHE: Redis under its own key prefix, or Django's database),
# so every process shows the estimate a worker took, and the estimates never mix with the default cache's keys
# (a plan that migrates a django-redis cache living in the same Redis would otherwise read them as its rows).
cache = ConnectionProxy(caches, settings.SHARED_CACHE)

ESTIMATE_SAMPLE_ITEMS = 200  # the first Scan page of this many items times the rest
ESTIMATE_CACHE_KEY = "lizzy:backup-estimate:{table}:{segments}"
# What the estimate's item count rests on (AWS's DescribeTable reference: "DynamoDB updates this value
# approximately every six hours. Recent changes might not be reflected in this value.")
ITEM_COUNT_LAG_TEXT = (
    "approximate: DescribeTable's ItemCount and TableSizeBytes, which DynamoDB updates about every 6 hours, so "
    "writes of the last hours may be missing"
)


class BackupError(ApplicationError):
    code = "backup_error"


@dataclass(frozen=True)
class BackupEstimate:
    """What a backup of one table will cost, shown before it starts."""

    table: str
    items: int  # DescribeTable's ItemCount (DynamoDB updates it about every six hours)
    table_bytes: int  # DescribeTable's TableSizeBytes
    export_bytes: int  # the JSON Lines export: items × bytes per item of a sample
    export_seconds: float  # items × seconds per item of the sample ÷ segments (a checksum-only Scan: the same)
    segments: int
    sample_items: int
    taken_at: dt.datetime  # when DescribeTable and the sample were read (a cached estimate shows its age)

    def text(self) -> str:
        return (
            f"{self.table}: about {self.items:,} items ({self.table_bytes / 1e6:,.1f} MB in DynamoDB; "
            f"{ITEM_COUNT_LAG_TEXT}); the JSON Lines export with {self.segments} parallel segment(s) takes about "
            f"{self.export_seconds:,.0f} s and {self.export_bytes / 1e6:,.1f} MB (from a {self.sample_items}-item "
            "sample). The on-demand backup (CreateBackup, where the endpoint has it) takes seconds whatever the size "
            "and consumes no capacity."
        )

    def age_text(self, now: dt.datetime | None = None) -> str:
        """``estimated 3 min ago (01:02:03 UTC)``: a cached estimate says how old it is."""
        seconds = max(((now or timezone.now()) - self.taken_at).total_seconds(), 0)
        ago = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
        return f"estimated {ago} ago ({self.taken_at:%Y-%m-%d %H:%M:%S} UTC)"

    def as_cached(self) -> dict[str, Any]:
        # Plain values only: the shared cache serializes as JSON (Redis) or pickles (Django's database).
        return {**asdict(self), "taken_at": self.taken_at.isoformat()}

    @classmethod
    def from_cached(cls, value: dict[str, Any]) -> BackupEstimate:
        return cls(**{**value, "taken_at": dt.datetime.fromisoformat(value["taken_at"])})


def _estimate_key(table: str, segments: int) -> str:
    return ESTIMATE_CACHE_KEY.format(table=table, segments=segments)


def backup_estimate(*, table: str, segments: int | None = None) -> BackupEstimate:
    """Expected time and size of an export (or a checksum Scan), from DescribeTable and one timed sample page.

    Always read afresh (a backup is chosen from it); kept in the cache for ``LIZZY_BACKUP_ESTIMATE_CACHE_SECONDS``
    so pages that only show it (``backup_estimate_cached``) need no DynamoDB call.
    """
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
    estimate = BackupEstimate(
        table=table,
        items=items,
        table_bytes=int(description.get("TableSizeBytes") or 0),
        export_bytes=round(items * sample_bytes / sampled),
        export_seconds=items * seconds / sampled / segments,
        segments=segments,
        sample_items=len(page.items),
        taken_at=timezone.now(),
    )
    try:
        cache.set(
            _estimate_key(table, segments), estimate.as_cached(), timeout=settings.LIZZY_BACKUP_ESTIMATE_CACHE_SECONDS
        )
    except Exception:  # best effort: a backup never fails because the cache (Redis) is away
        logger.warning("could not cache the backup estimate of %s", table, exc_info=True)
    return estimate


def backup_estimate_cached(*, table: str, segments: int | None = None) -> BackupEstimate | None:
    """The last estimate of ``table`` if it is still in the cache, else None; never calls DynamoDB."""
    try:
        value = cache.get(_estimate_key(table, segments or settings.LIZZY_BACKUP_SEGMENTS))
    except Exception:  # the cache (Redis) away: shown as not estimated
        logger.warning("could not read the cached backup estimate of %s", table, exc_info=True)
        return None
    return None if value is None else BackupEstimate.from_cached(value)


def table_definition(description: dict[str, Any], ttl_attribute: str | None) -> dict[str, Any]:
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


def table_checksum(*, table: str, segments: int | None = None) -> SetChecksum:
    """Count and order-independent checksum of every item, by a parallel Scan of ``segments`` segments."""
    checksum = SetChecksum()
    lock = threading.Lock()

    def consume(items: list[dict[str, Any]]) -> None:
        lines = [canonical_text(item) for item in items]
        with lock:
            for line in lines:
                checksum.add_text(line)

    dynamodb_parallel_scan(
        table=table,
        total_segments=segments or settings.LIZZY_BACKUP_SEGMENTS,
        consume=consume,
        consistent=True,
        profile=SCAN_PROFILE,
    )
    return checksum


def restore_verification(*, backup: Backup, table: str, checksum: SetChecksum) -> dict[str, Any]:
    """Compare a restored table with what the backup recorded; raise when an exact record disagrees.

    ``verified`` is True only for an exact match of count and checksum taken at backup time. A backup without
    them (a native backup too large for a checksum Scan) is compared with DescribeBackup's approximate
    ItemCount: ``verified`` False, the numbers and what was compared in ``verified_by``.
    """
    found = {"item_count": checksum.count, "checksum": checksum.hexdigest()}
    if backup.checksummed:
        if (checksum.count, checksum.hexdigest()) != (backup.item_count, backup.checksum):
            raise BackupError(
                ERR_RESTORE_MISMATCH.format(
                    table=table,
                    id=backup.pk,
                    count=checksum.count,
                    checksum=checksum.hexdigest(),
                    expected_count=backup.item_count,
                    expected_checksum=backup.checksum,
                ),
                details={
                    "table": table,
                    "backup": backup.pk,
                    "verified": False,
                    **found,
                    "expected_item_count": backup.item_count,
                    "expected_checksum": backup.checksum,
                },
            )
        return {
            "verified": True,
            "verified_by": VERIFIED_BY_CHECKSUM,
            **found,
            "expected_item_count": backup.item_count,
            "expected_checksum": backup.checksum,
        }
    approximate = backup.native_details.get("approximate_item_count")
    return {
        "verified": False,
        "verified_by": VERIFIED_BY_APPROXIMATE,
        **found,
        "expected_item_count": None,
        "expected_checksum": None,
        "approximate_item_count": approximate,
        "count_matches_approximate": approximate is not None and checksum.count == approximate,
    }
