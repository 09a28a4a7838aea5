"""Table administration: create, update, delete, wait until active, TTL, backups, describe, list."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lizzy.dynamodb import client
from lizzy.dynamodb.errors import ERR_TABLE_MISSING, DynamoDBError, TableNotFound


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


def dynamodb_create_backup(*, table: str, name: str) -> str | None:
    """On-demand CreateBackup; returns the backup ARN, or None when the endpoint lacks the feature."""
    try:
        response = client._call("CreateBackup", table=table, TableName=table, BackupName=name)
    except DynamoDBError as exc:
        if getattr(exc, "aws_code", "") in {
            "UnknownOperationException",
            "NotImplementedError",
            "ContinuousBackupsUnavailableException",
        }:
            return None
        raise
    return response["BackupDetails"]["BackupArn"]


def table_key_names(table: str) -> tuple[str, ...]:
    """The key attribute names of a table (DescribeTable once per process and table)."""
    if table not in client._key_names_cache:
        description = dynamodb_describe_table(table=table)
        if description is None:
            raise TableNotFound(ERR_TABLE_MISSING.format(table=table), details={"table": table})
        client._key_names_cache[table] = tuple(k["AttributeName"] for k in description["KeySchema"])
    return client._key_names_cache[table]
