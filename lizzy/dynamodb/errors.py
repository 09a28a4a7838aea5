"""The product's DynamoDB errors, and the translation of botocore's exceptions into them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from rest_framework import status

from lizzy import metrics
from lizzy.dynamodb.capacity import _notify_error
from lizzy.errors import ApplicationError, ServiceUnavailable, ValidationFailed

THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})

ERR_UNAVAILABLE = "DynamoDB is unreachable ({reason}). Nothing was written; try again shortly."
ERR_THROTTLED = "DynamoDB throttled the request to {table}. Try again shortly."
ERR_TABLE_MISSING = (
    "DynamoDB table {table} does not exist. Run `python manage.py ensure_tables` (the product's tables) or "
    "`python manage.py migration_setup_tables PLAN` (a migration plan's target tables)."
)


class DynamoDBError(ApplicationError):
    code = "dynamodb_error"
    http_status = status.HTTP_502_BAD_GATEWAY


class DynamoDBUnavailable(ServiceUnavailable):
    code = "dynamodb_unavailable"


class DynamoDBThrottled(ServiceUnavailable):
    code = "dynamodb_throttled"


class TableNotFound(DynamoDBError):
    code = "table_not_found"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


class ConditionFailed(DynamoDBError):
    """A ConditionExpression did not hold; callers turn it into their own domain error."""

    code = "condition_failed"
    http_status = status.HTTP_409_CONFLICT


class CodecError(ValidationFailed):
    code = "unstorable_value"


class ItemTooLarge(ValidationFailed):
    code = "item_too_large"
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class BatchWriteIncomplete(DynamoDBError):
    code = "batch_write_incomplete"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, unwritten: int, written: int, spent: Any = None) -> None:
        super().__init__(message, details={"unwritten": unwritten, "written": written})
        self.unwritten = unwritten
        self.written = written
        self.spent = spent  # what its calls consumed (``lizzy.dynamodb.batch.spent_of``)


class DuplicateKeysInBatch(ValidationFailed):
    code = "duplicate_keys_in_batch"


class BackupsUnsupported(DynamoDBError):
    """The endpoint has no on-demand backups or point-in-time recovery (DynamoDB Local, some emulators)."""

    code = "backups_unsupported"
    http_status = status.HTTP_501_NOT_IMPLEMENTED


def _translate(operation: str, table: str, exc: Exception) -> Exception:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "ConditionalCheckFailedException":
            # A condition that did not hold is an answer (the key exists, another writer won), not an
            # error: counted apart, as CloudWatch counts ConditionalCheckFailedRequests apart from UserErrors.
            metrics.DYNAMODB_CONDITIONAL_FAILURES.labels(operation, table).inc()
            return ConditionFailed(message)
        metrics.DYNAMODB_ERRORS.labels(operation, table, code).inc()
        if code in THROTTLING_CODES:
            metrics.DYNAMODB_THROTTLES.labels(operation, table).inc()
            _notify_error("throttled", operation, table, code)
            return DynamoDBThrottled(ERR_THROTTLED.format(table=table), details={"code": code})
        http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        _notify_error("system" if http_status >= 500 else "user", operation, table, code)
        if code == "ResourceNotFoundException":
            return TableNotFound(ERR_TABLE_MISSING.format(table=table), details={"table": table})
        error = DynamoDBError(f"DynamoDB {operation} failed: {code}: {message}", details={"code": code})
        error.aws_code = code
        return error
    name = type(exc).__name__
    metrics.DYNAMODB_ERRORS.labels(operation, table, name).inc()
    _notify_error("system", operation, table, name)
    if isinstance(exc, _TRANSPORT_ERRORS):
        return DynamoDBUnavailable(ERR_UNAVAILABLE.format(reason=name), details={"reason": name})
    return DynamoDBError(f"DynamoDB {operation} failed: {exc}", details={"code": name})


_TRANSPORT_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
