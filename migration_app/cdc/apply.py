"""Decoded changes → DynamoDB writes, with the plan's mapping (the transform the backfill uses).

For every entity that reads the changed table:

- INSERT: the new row, if it passes the entity's filters, is put.
- UPDATE: the new row is put (if it passes the filters); the old row's item is deleted when its item key
  differs from the new one (a key change) or when the new row no longer passes the filters. Unchanged
  TOASTed columns (``u``) are taken from the old row, which REPLICA IDENTITY FULL sends in full.
- DELETE: the old row's item is deleted.
- TRUNCATE: refused (the worker stops, naming the table): which items a truncated table owned is not
  something a change carries, and silently keeping them would make the target disagree with the source.

Batching without reordering: within one batch the last operation on each item key is the one that
counts (a put is a full overwrite, a delete removes whatever is there), so the batch is reduced to one
operation per key, in commit order, and sent with BatchWriteItem (25 per call, no two on one key).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import dynamodb_batch_write
from lizzy.errors import ApplicationError
from migration_app.cdc.pgoutput import (
    UNCHANGED,
    Delete,
    Insert,
    RelationMessage,
    Transaction,
    Truncate,
    Update,
    lsn_to_text,
)
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.services.plans import PlanContext
from migration_app.sources import KEY

ERR_TRUNCATE = (
    "TRUNCATE of {table} (commit at {lsn}) cannot be replayed item by item; change capture stopped. "
    "Roll the plan back to setup and run the backfill again."
)
ERR_ROW = "plan {plan}, table {table}, rule {rule}, source key {key}: {reason} (change capture stopped at {lsn})"
ERR_UNCHANGED = (
    "table {table} sent an unchanged TOASTed column {column!r} without the old row: its REPLICA IDENTITY is not "
    "FULL (setup sets it; was it changed?)"
)
ERR_IDENTITY = (
    "table {table} is captured with REPLICA IDENTITY {identity!r}, not FULL: its old rows arrive without the columns "
    "an item key may be built from. Setup sets FULL; run ALTER TABLE {table} REPLICA IDENTITY FULL, then roll the "
    "plan back to setup and start over (changes decoded meanwhile lack their old rows)."
)
ERR_COLUMNS = (
    "table {table} publishes columns {published} but the mapping reads {read}: generated columns are not "
    "published by logical decoding"
)


class CdcApplyError(ApplicationError):
    code = "cdc_apply_failed"


@dataclass
class Operation:
    table: str
    key: tuple[Any, ...]
    key_names: tuple[str, ...]
    item: dict[str, Any] | None  # None: delete


@dataclass
class ApplyOutcome:
    changes: int = 0
    puts: int = 0
    deletes: int = 0
    operations: list[Operation] = field(default_factory=list)


def _merged(old: tuple | None, new: tuple, relation: RelationMessage) -> list[str | None]:
    values = []
    for position, value in enumerate(new):
        if value is UNCHANGED:
            if old is None or old[position] is UNCHANGED:
                raise CdcApplyError(
                    ERR_UNCHANGED.format(table=_label(relation), column=relation.columns[position].name)
                )
            value = old[position]
        values.append(value)
    return values


def _label(relation: RelationMessage) -> str:
    return f"{relation.schema}.{relation.table}"


class ChangeApplier:
    """Turns transactions into operations (with one source round trip per table per batch) and writes them."""

    def __init__(self, *, context: PlanContext, type_names: Callable[[RelationMessage], list[str]]) -> None:
        self.context = context
        self.type_names = type_names
        self.by_table: dict[tuple[str, str], list[EntityMapping]] = {}
        for entity in context.entities:
            self.by_table.setdefault((entity.schema, entity.table), []).append(entity)

    def operations(self, transactions: list[Transaction], relations: dict[int, RelationMessage]) -> ApplyOutcome:
        outcome = ApplyOutcome()
        # 1. every tuple to convert, per relation, in order
        wanted: dict[int, list[list[str | None]]] = {}
        plans: list[tuple[Transaction, Any, int | None, int | None]] = []  # change, old index, new index

        def want(oid: int, values: list[str | None]) -> int:
            rows = wanted.setdefault(oid, [])
            rows.append(values)
            return len(rows) - 1

        for transaction in transactions:
            for change in transaction.changes:
                outcome.changes += 1
                if isinstance(change, Truncate):
                    names = ", ".join(_label(relations[oid]) for oid in change.relation_oids if oid in relations)
                    raise CdcApplyError(ERR_TRUNCATE.format(table=names, lsn=_lsn(transaction)))
                relation = relations[change.relation_oid]
                if (relation.schema, relation.table) not in self.by_table:
                    continue
                if relation.replica_identity != "f":
                    raise CdcApplyError(ERR_IDENTITY.format(table=_label(relation), identity=relation.replica_identity))
                old_index = new_index = None
                if isinstance(change, Insert):
                    new_index = want(change.relation_oid, _merged(None, change.new, relation))
                elif isinstance(change, Update):
                    old_values = list(change.old) if change.old is not None else None
                    if old_values is not None and UNCHANGED not in old_values:
                        old_index = want(change.relation_oid, old_values)
                    new_index = want(change.relation_oid, _merged(change.old, change.new, relation))
                elif isinstance(change, Delete):
                    old_index = want(change.relation_oid, list(change.old))
                plans.append((transaction, change, old_index, new_index))
        # 2. convert through the source, exactly as a backfill page is typed
        converted: dict[int, dict[str, list[tuple[dict[str, Any], bool]]]] = {}
        for oid, tuples in wanted.items():
            relation = relations[oid]
            names = [column.name for column in relation.columns]
            columns = list(zip(names, self.type_names(relation), strict=True))
            converted[oid] = {}
            for entity in self.by_table[(relation.schema, relation.table)]:
                read = {c for c in entity.columns if not c.startswith("__")}
                if not read <= set(names):
                    raise CdcApplyError(ERR_COLUMNS.format(table=_label(relation), published=names, read=sorted(read)))
                source_relation = self.context.source.relation(entity)
                converted[oid][entity.name] = self.context.source.rows_from_text(
                    source_relation, columns=columns, tuples=tuples
                )
        # 3. operations, in commit order
        for transaction, change, old_index, new_index in plans:
            relation = relations[change.relation_oid]
            for entity in self.by_table[(relation.schema, relation.table)]:
                rows = converted[change.relation_oid][entity.name]
                old_key = None
                if old_index is not None:
                    old_row, old_matched = rows[old_index]
                    if old_matched:
                        old_key = self._key_or_none(entity, old_row)
                new_item = None
                if new_index is not None:
                    new_row, new_matched = rows[new_index]
                    if new_matched:
                        new_item = self._item(entity, new_row, transaction)
                new_key = tuple(new_item[name] for name in entity.key_names) if new_item is not None else None
                if old_key is not None and old_key != new_key:
                    outcome.operations.append(Operation(entity.target_table, old_key, entity.key_names, None))
                if new_item is not None:
                    outcome.operations.append(Operation(entity.target_table, new_key, entity.key_names, new_item))
        return outcome

    def _item(self, entity: EntityMapping, row: dict[str, Any], transaction: Transaction) -> dict[str, Any]:
        try:
            return entity.transform(row)
        except RowError as exc:
            key = dict(zip(self.context.source.relation(entity).key, row[KEY], strict=True))
            raise CdcApplyError(
                ERR_ROW.format(
                    plan=self.context.plan.name,
                    table=entity.table,
                    rule=entity.rule,
                    key=key,
                    reason=exc.message,
                    lsn=_lsn(transaction),
                )
            ) from exc

    @staticmethod
    def _key_or_none(entity: EntityMapping, row: dict[str, Any]) -> tuple[Any, ...] | None:
        """The item key the row had; None when the row could never become an item (nothing to delete)."""
        try:
            item = entity.transform(row)
        except RowError:
            return None
        return tuple(item[name] for name in entity.key_names)


def _lsn(transaction: Transaction) -> str:
    return lsn_to_text(transaction.commit_lsn)


def operations_reduce(operations: list[Operation]) -> dict[str, list[Operation]]:
    """One operation per (table, key), the last in commit order; grouped by table."""
    last: OrderedDict[tuple[str, tuple[Any, ...]], Operation] = OrderedDict()
    for operation in operations:
        slot = (operation.table, operation.key)
        last.pop(slot, None)
        last[slot] = operation
    tables: dict[str, list[Operation]] = {}
    for operation in last.values():
        tables.setdefault(operation.table, []).append(operation)
    return tables


def operations_write(operations: list[Operation], *, fence: Callable[[], None]) -> tuple[int, int]:
    """Write the reduced operations; ``fence()`` runs before each table's writes (raises if the lease is lost)."""
    puts = deletes = 0
    for table, entries in operations_reduce(operations).items():
        fence()
        items = [entry.item for entry in entries if entry.item is not None]
        keys = [dict(zip(entry.key_names, entry.key, strict=True)) for entry in entries if entry.item is None]
        dynamodb_batch_write(
            table=table,
            items=items,
            delete_keys=keys,
            key_names=entries[0].key_names,
            on_duplicate="raise",
            concurrency=settings.LIZZY_MIGRATION_WRITE_CONCURRENCY,
        )
        puts += len(items)
        deletes += len(keys)
    return puts, deletes
