"""Whole-table reads (validation, backups): their own client profile, and errors that say what they mean.

A Scan page can take far longer than a GetItem, so scans go through the ``scan`` client profile
(``LIZZY_DYNAMODB_SCAN_READ_TIMEOUT``, ``LIZZY_DYNAMODB_SCAN_MAX_ATTEMPTS``). When a scan still fails, the
DynamoDB door's message ("Nothing was written; try again shortly") is the truth for a write, not for a
read: validation and backups say instead that they could not read the table. The failed request is
still recorded by the door (``lizzy_dynamodb_errors_total`` and the dashboard's alarms), like any other.
"""

from __future__ import annotations

from django.conf import settings

from lizzy.dynamodb import DynamoDBError, DynamoDBThrottled, DynamoDBUnavailable, TableNotFound
from lizzy.errors import ApplicationError, ServiceUnavailable

SCAN_PROFILE = "scan"
ERR_VALIDATION_UNREADABLE = (
    "Validation could not read the target table {table} ({reason}); no report was made and nothing in "
    "DynamoDB was changed. Scans use LIZZY_DYNAMODB_SCAN_READ_TIMEOUT ({timeout:g} s); try again or raise it."
)
ERR_BACKUP_UNREADABLE = (
    "The backup could not read table {table} ({reason}); no backup was recorded and the table was not "
    "changed. Scans use LIZZY_DYNAMODB_SCAN_READ_TIMEOUT ({timeout:g} s); try again or raise it."
)
# What a scan may fail with; TableNotFound (a DynamoDBError too) keeps its own message.
SCAN_ERRORS = (DynamoDBUnavailable, DynamoDBThrottled, DynamoDBError)


class ScanUnreadable(ServiceUnavailable):
    """A table could not be read to its end: the operation that scanned knows nothing about it."""

    code = "scan_unreadable"


def scan_unreadable(exc: ApplicationError, *, table: str, template: str) -> ApplicationError:
    """A scan's DynamoDB error as what it means to the operation that scanned."""
    if isinstance(exc, TableNotFound):
        return exc
    details = exc.details if isinstance(exc.details, dict) else {}
    reason = details.get("reason") or details.get("code") or type(exc).__name__
    return ScanUnreadable(
        template.format(table=table, reason=reason, timeout=settings.DYNAMODB_SCAN_READ_TIMEOUT),
        details={"table": table, "reason": reason},
    )
