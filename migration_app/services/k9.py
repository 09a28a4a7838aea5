"""Seed 004's repositories over the migrated K9 tables, so existing handlers keep their calls.

``UserRepository.create_user(user)`` and friends keep the seed's names. What they add over raw calls:
``created_at``/``updated_at`` stamped here (not trusted from callers), updates of a report only by its
owner (a ConditionExpression, so a forged ``user_id`` cannot touch someone else's row), and Python types
converted both ways (floats in, exact Decimals stored; vectors read back as floats).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from lizzy.dynamodb import (
    ConditionFailed,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_query,
    dynamodb_update_item,
)
from lizzy.errors import NotFound, PreconditionFailed, ValidationFailed
from migration_app.services.mapping import target_name
from migration_app.services.types import timestamp_text

ERR_EXISTS = "{kind} {id} already exists."
ERR_NOT_FOUND = "{kind} {id} does not exist or does not belong to this user."
ERR_IMMUTABLE = "{fields} cannot be changed."

USERS_TABLE = "k9-users-{env}"
REPORTS_TABLE = "k9-reports-{env}"
EMBEDDINGS_TABLE = "k9-embeddings-{env}"


class RecordExists(PreconditionFailed):
    code = "record_exists"


def _now() -> str:
    # The width the migration writes (six fraction digits): created_at sort keys of migrated and new
    # items sort together in time order.
    return timestamp_text(dt.datetime.now(dt.UTC))


def _to_python(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {key: [float(v) for v in value] if key == "vector" else value for key, value in item.items()}


def _update(table: str, key: dict[str, Any], changes: dict[str, Any], condition: str | None, values: dict) -> dict:
    immutable = set(changes) & {*key, "created_at", "user_id"}
    if immutable:
        raise ValidationFailed(ERR_IMMUTABLE.format(fields=", ".join(sorted(immutable))))
    changes = {**changes, "updated_at": _now()}
    names = {f"#f{i}": name for i, name in enumerate(changes)}
    update_values = {f":v{i}": value for i, value in enumerate(changes.values())}
    update = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
    exists = " AND ".join(f"attribute_exists({name})" for name in key)
    return dynamodb_update_item(
        table=table,
        key=key,
        update=update,
        condition=f"{exists} AND {condition}" if condition else exists,
        names=names,
        values={**update_values, **values},
    )


def _create(table: str, record: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    """Put a new record stamped with created_at/updated_at; refuse one whose ``key`` already exists."""
    now = _now()
    item = {**record, "created_at": now, "updated_at": now}
    try:
        dynamodb_put_item(table=target_name(table), item=item, condition=f"attribute_not_exists({key})")
    except ConditionFailed as exc:
        raise RecordExists(ERR_EXISTS.format(kind=kind, id=record[key])) from exc
    return item


class UserRepository:
    @staticmethod
    def create_user(user: dict[str, Any]) -> dict[str, Any]:
        return _create(USERS_TABLE, user, "user_id", "User")

    @staticmethod
    def get_user(user_id: str) -> dict[str, Any] | None:
        return dynamodb_get_item(table=target_name(USERS_TABLE), key={"user_id": user_id}, consistent=True)

    @staticmethod
    def update_user(user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        try:
            return _update(target_name(USERS_TABLE), {"user_id": user_id}, changes, None, {})
        except ConditionFailed as exc:
            raise NotFound(ERR_NOT_FOUND.format(kind="User", id=user_id)) from exc


class ReportRepository:
    @staticmethod
    def create_report(report: dict[str, Any]) -> dict[str, Any]:
        return _create(REPORTS_TABLE, report, "report_id", "Report")

    @staticmethod
    def get_report(report_id: str, user_id: str) -> dict[str, Any] | None:
        item = dynamodb_get_item(table=target_name(REPORTS_TABLE), key={"report_id": report_id}, consistent=True)
        return item if item and item.get("user_id") == user_id else None

    @staticmethod
    def update_report(report_id: str, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Only the owner's row changes: the condition is checked by DynamoDB in the same write."""
        try:
            return _update(
                target_name(REPORTS_TABLE), {"report_id": report_id}, changes, "user_id = :owner", {":owner": user_id}
            )
        except ConditionFailed as exc:
            raise NotFound(ERR_NOT_FOUND.format(kind="Report", id=report_id)) from exc

    @staticmethod
    def list_reports(user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, through the user_id/created_at GSI."""
        page = dynamodb_query(
            table=target_name(REPORTS_TABLE),
            index="user_id-created_at-index",
            key_condition="user_id = :u",
            values={":u": user_id},
            forward=False,
            limit=limit,
        )
        return page.items


class EmbeddingRepository:
    @staticmethod
    def store_embedding(embedding: dict[str, Any]) -> dict[str, Any]:
        vector = [Decimal(str(value)) for value in embedding["vector"]]
        item = {**embedding, "vector": vector, "dimensions": len(vector), "created_at": _now()}
        dynamodb_put_item(table=target_name(EMBEDDINGS_TABLE), item=item)
        return _to_python(item)

    @staticmethod
    def get_embedding(embedding_id: str) -> dict[str, Any] | None:
        return _to_python(dynamodb_get_item(table=target_name(EMBEDDINGS_TABLE), key={"embedding_id": embedding_id}))

    @staticmethod
    def list_by_model_version(model_version: str, limit: int = 100) -> list[dict[str, Any]]:
        page = dynamodb_query(
            table=target_name(EMBEDDINGS_TABLE),
            index="model_version-created_at-index",
            key_condition="model_version = :m",
            values={":m": model_version},
            limit=limit,
        )
        return [_to_python(item) for item in page.items]
