"""Every DynamoDB table the product needs, as data, and the service that makes them exist.

``ensure_tables`` and ``export_infrastructure`` read these specs; nothing else spells a key schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import (
    dynamodb_create_table,
    dynamodb_describe_table,
    dynamodb_enable_ttl,
    dynamodb_ttl_attribute,
    dynamodb_update_table,
    dynamodb_wait_until_active,
)


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None = None
    projection: str = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """One table: base name (the environment suffix is added at run time), keys, GSIs, TTL."""

    base_name: str
    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=lambda: {"Project": "LizzyAgenticCommerce"})

    @property
    def name(self) -> str:
        return table_name(self.base_name)

    def attribute_definitions(self) -> list[dict[str, str]]:
        keys = [self.partition_key, self.sort_key]
        for index in self.indexes:
            keys += [index.partition_key, index.sort_key]
        definitions: dict[str, str] = {}
        for key in keys:
            if key:
                definitions[key[0]] = key[1]
        return [{"AttributeName": name, "AttributeType": kind} for name, kind in definitions.items()]

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.partition_key, self.sort_key)

    def index_definition(self, index: IndexSpec) -> dict[str, Any]:
        return {
            "IndexName": index.name,
            "KeySchema": _key_schema(index.partition_key, index.sort_key),
            "Projection": {"ProjectionType": index.projection},
        }

    def create_definition(self) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "AttributeDefinitions": self.attribute_definitions(),
            "KeySchema": self.key_schema(),
            "BillingMode": "PAY_PER_REQUEST",
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
        }
        if self.indexes:
            definition["GlobalSecondaryIndexes"] = [self.index_definition(index) for index in self.indexes]
        return definition


def _key_schema(partition: tuple[str, str], sort: tuple[str, str] | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition[0], "KeyType": "HASH"}]
    if sort:
        schema.append({"AttributeName": sort[0], "KeyType": "RANGE"})
    return schema


def table_name(base_name: str) -> str:
    """``LizzySMSSessions`` or, with ``LIZZY_ENV=prod``, ``LizzySMSSessions-prod`` (seed 004's pattern)."""
    return f"{base_name}-{settings.LIZZY_ENV}" if settings.LIZZY_ENV else base_name


SESSIONS = TableSpec(
    base_name="LizzySMSSessions",
    partition_key=("phone", "S"),
    ttl_attribute="ttl",
    description="SMS conversation state per phone (seed 000); items expire 15 minutes after lastActivity.",
)

# Other modules add their tables here at import time (cache table, migration targets).
_REGISTRY: dict[str, TableSpec] = {SESSIONS.base_name: SESSIONS}
_providers: list[Callable[[], list[TableSpec]]] = []


def register_table(spec: TableSpec) -> TableSpec:
    _REGISTRY[spec.base_name] = spec
    return spec


def register_table_provider(provider: Callable[[], list[TableSpec]]) -> None:
    """Add specs computed at run time (for example from migration plans stored in the database)."""
    _providers.append(provider)


def product_tables() -> list[TableSpec]:
    specs = dict(_REGISTRY)
    for provider in _providers:
        for spec in provider():
            specs.setdefault(spec.base_name, spec)
    return list(specs.values())


@dataclass
class EnsureResult:
    table: str
    created: bool = False
    ttl_enabled: bool = False
    indexes_added: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = ["created" if self.created else "already existed"]
        if self.ttl_enabled:
            parts.append("TTL enabled")
        if self.indexes_added:
            parts.append("added GSIs " + ", ".join(self.indexes_added))
        return f"{self.table}: " + "; ".join(parts)


def table_ensure(*, spec: TableSpec, name: str | None = None) -> EnsureResult:
    """Create the table if missing, wait until ACTIVE, add missing GSIs, enable TTL once. Idempotent."""
    name = name or spec.name
    result = EnsureResult(table=name)
    description = dynamodb_describe_table(table=name)
    if description is None:
        dynamodb_create_table(table=name, definition=spec.create_definition())
        result.created = True
    dynamodb_wait_until_active(table=name)
    if description is not None:
        present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
        for index in spec.indexes:
            if index.name in present:
                continue
            # DynamoDB accepts one GSI creation per UpdateTable call.
            dynamodb_update_table(
                table=name,
                changes={
                    "AttributeDefinitions": spec.attribute_definitions(),
                    "GlobalSecondaryIndexUpdates": [{"Create": spec.index_definition(index)}],
                },
            )
            dynamodb_wait_until_active(table=name)
            result.indexes_added.append(index.name)
    # Enabling TTL twice is an error on real DynamoDB: look first.
    if spec.ttl_attribute and dynamodb_ttl_attribute(table=name) != spec.ttl_attribute:
        dynamodb_enable_ttl(table=name, attribute=spec.ttl_attribute)
        result.ttl_enabled = True
    return result


def tables_ensure(*, specs: list[TableSpec] | None = None) -> list[EnsureResult]:
    return [table_ensure(spec=spec) for spec in (specs or product_tables())]
