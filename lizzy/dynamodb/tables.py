"""Table administration: create, update, delete, wait until active, TTL, backups and PITR restores, describe, list."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from lizzy.dynamodb import client
from lizzy.dynamodb.errors import ERR_TABLE_MISSING, BackupsUnsupported, DynamoDBError, TableNotFound


def dynamodb_describe_table(*, table: str) -> dict[str, Any] | None:
    try:
        return client._call("DescribeTable", table=table, TableName=table)["Table"]
    except TableNotFound:
        return None


def dynamodb_create_table(*, table: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    return client._call("CreateTable", table=table, TableName=table, **definition)["TableDescription"]


def dynamodb_update_table(*, table: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    return client._call("UpdateTable", table=table, TableName=table, **changes)["TableDescription"]


def dynamodb_delete_table(*, table: str) -> None:
    client._call("DeleteTable", table=table, TableName=table)


def dynamodb_wait_until_active(*, table: str, timeout_seconds: int = 300) -> None:
    """CreateTable is asynchronous on real DynamoDB: wait until the table (and its GSIs) are ACTIVE."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.2
    while True:
        description = dynamodb_describe_table(table=table)
        if (
            description
            and description.get("TableStatus") == "ACTIVE"
            and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE"
                for index in description.get("GlobalSecondaryIndexes", [])
            )
        ):
            return
        if time.monotonic() > deadline:
            raise DynamoDBError(f"Table {table} did not become ACTIVE within {timeout_seconds} s.")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def dynamodb_ttl_attribute(*, table: str) -> str | None:
    """The enabled (or enabling) TTL attribute of a table, or None."""
    description = client._call("DescribeTimeToLive", table=table, TableName=table)["TimeToLiveDescription"]
    if description.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
        return description.get("AttributeName")
    return None


def dynamodb_enable_ttl(*, table: str, attribute: str) -> None:
    client._call(
        "UpdateTimeToLive",
        table=table,
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
    )


def dynamodb_list_tables() -> list[str]:
    names: list[str] = []
    params: dict[str, Any] = {}
    while True:
        response = client._call("ListTables", **params)
        names.extend(response.get("TableNames", []))
        if not response.get("LastEvaluatedTableName"):
            return names
        params["ExclusiveStartTableName"] = response["LastEvaluatedTableName"]


# What an endpoint without on-demand backups answers (DynamoDB Local: UnknownOperationException).
BACKUP_UNSUPPORTED_CODES = frozenset({"UnknownOperationException", "NotImplementedError"})
ERR_BACKUPS_UNSUPPORTED = "{operation} on {table}: the DynamoDB endpoint {endpoint} does not support it ({code})."


def dynamodb_endpoint_text() -> str:
    """The endpoint calls go to, for messages: the configured URL, or AWS and its region."""
    return settings.AWS_ENDPOINT_URL_DYNAMODB or f"AWS DynamoDB ({settings.AWS_REGION})"


@contextmanager
def _backups_supported(operation: str, *, table: str) -> Iterator[None]:
    """Around a backup API call: an endpoint that lacks the feature raises BackupsUnsupported, naming the table and
    the endpoint. (Each call names its operation literally: tests/lizzy/test_iam_policy.py reads them.)"""
    try:
        yield
    except DynamoDBError as exc:
        code = getattr(exc, "aws_code", "")
        if code in BACKUP_UNSUPPORTED_CODES:
            message = ERR_BACKUPS_UNSUPPORTED.format(
                operation=operation, table=table, endpoint=dynamodb_endpoint_text(), code=code
            )
            raise BackupsUnsupported(message, details={"table": table, "code": code}) from exc
        raise


def dynamodb_create_backup(*, table: str, name: str) -> str:
    """On-demand CreateBackup (a full copy in seconds whatever the size, no capacity consumed); the backup ARN."""
    with _backups_supported("CreateBackup", table=table):
        response = client._call("CreateBackup", table=table, TableName=table, BackupName=name)
    return response["BackupDetails"]["BackupArn"]


def dynamodb_describe_backup(*, table: str, arn: str) -> dict[str, Any]:
    """DescribeBackup's BackupDescription: BackupDetails (status, size) and SourceTableDetails (ItemCount, which
    AWS documents as approximate)."""
    with _backups_supported("DescribeBackup", table=table):
        return client._call("DescribeBackup", table=table, BackupArn=arn)["BackupDescription"]


def dynamodb_restore_table_from_backup(*, table: str, arn: str) -> dict[str, Any]:
    """RestoreTableFromBackup into ``table``, which must not exist: DynamoDB only restores into a new table. TTL,
    streams, tags, auto scaling and PITR are not restored (AWS's API reference)."""
    with _backups_supported("RestoreTableFromBackup", table=table):
        response = client._call("RestoreTableFromBackup", table=table, TargetTableName=table, BackupArn=arn)
    return response["TableDescription"]


def dynamodb_delete_backup(*, table: str, arn: str) -> None:
    """DeleteBackup of one on-demand backup of ``table`` (AWS bills a backup's storage until it is deleted)."""
    with _backups_supported("DeleteBackup", table=table):
        client._call("DeleteBackup", table=table, BackupArn=arn)


def dynamodb_list_backups(*, table: str) -> list[dict[str, Any]]:
    """ListBackups' BackupSummaries of the on-demand (USER) backups of ``table``, every page."""
    summaries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"TableName": table, "BackupType": "USER"}
    while True:
        with _backups_supported("ListBackups", table=table):
            response = client._call("ListBackups", table=table, **params)
        summaries.extend(response.get("BackupSummaries", []))
        if not response.get("LastEvaluatedBackupArn"):
            return summaries
        params["ExclusiveStartBackupArn"] = response["LastEvaluatedBackupArn"]


def dynamodb_restore_table_to_point_in_time(*, source: str, table: str, when: dt.datetime | None) -> dict[str, Any]:
    """RestoreTableToPointInTime of ``source`` as it was at ``when`` (None: the latest restorable time) into
    ``table``, which DynamoDB creates: it never restores over a table. TTL, streams, tags, auto scaling and PITR
    are not restored (AWS's API reference)."""
    params: dict[str, Any] = {"SourceTableName": source, "TargetTableName": table}
    if when is None:
        params["UseLatestRestorableTime"] = True
    else:
        params["RestoreDateTime"] = when
    with _backups_supported("RestoreTableToPointInTime", table=source):
        response = client._call("RestoreTableToPointInTime", table=source, **params)
    return response["TableDescription"]


def dynamodb_enable_point_in_time_recovery(*, table: str) -> str:
    """UpdateContinuousBackups with PITR on; the PointInTimeRecoveryStatus DynamoDB answers (ENABLED)."""
    with _backups_supported("UpdateContinuousBackups", table=table):
        response = client._call(
            "UpdateContinuousBackups",
            table=table,
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return response["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]


def dynamodb_point_in_time_recovery(*, table: str) -> dict[str, Any]:
    """DescribeContinuousBackups' PointInTimeRecoveryDescription (status, earliest/latest restorable time)."""
    with _backups_supported("DescribeContinuousBackups", table=table):
        response = client._call("DescribeContinuousBackups", table=table, TableName=table)
    return response["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})


def table_key_names(table: str) -> tuple[str, ...]:
    """The key attribute names of a table (DescribeTable once per process and table)."""
    if table not in client._key_names_cache:
        description = dynamodb_describe_table(table=table)
        if description is None:
            raise TableNotFound(ERR_TABLE_MISSING.format(table=table), details={"table": table})
        client._key_names_cache[table] = tuple(k["AttributeName"] for k in description["KeySchema"])
    return client._key_names_cache[table]
