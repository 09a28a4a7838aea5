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

Bad rows, as the backfill has them, are set aside, not applied (the worker quarantines them, and stops
past the plan's ``max_bad_rows``):

- a new row the transform refuses (a NULL key attribute, a value DynamoDB cannot hold exactly): its change
  writes no item, and the old row's item, when there was one, is *deleted*: the target does not go on
  serving a value the source no longer has (validation reports the row missing; the quarantine says why);
- an item DynamoDB or the codec refuses at write (over 400 KB, a value it cannot store): the table's batch
  is written again item by item, the refused put becomes a delete of its key for the same reason;
- two source rows writing one item key within the batch (``key-collisions: "error"``, the default): the
  later change's operation on that key is dropped and the change quarantined, naming both source keys. A
  delete that is a row's own key change (or its DELETE) frees the key for another row. A collision with an
  item written by an *earlier* batch is not seen here (that needs a read per put): validation's count
  reconciliation reports it. Under ``"last-wins"`` the later change wins.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import (
    DynamoDBError,
    dynamodb_batch_write,
    dynamodb_delete_item,
    dynamodb_put_item,
    serialize_checked,
)
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
from migration_app.models import ChangeKind
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.services.plans import PlanContext
from migration_app.services.writer import ERR_COLLISION, ITEM_ERRORS, item_key, item_problem, page_refused, row_json
from migration_app.sources import KEY
from migration_app.sources.base import ROW_ERROR, key_shown

ERR_TRUNCATE = (
    "TRUNCATE of {table} (commit at {lsn}) cannot be replayed item by item; change capture stopped. "
    "Roll the plan back to setup and run the backfill again."
)
ERR_ROW = "plan {plan}, table {table}, rule {rule}, source key {key}, {kind} committed at {lsn}: {reason}"
ERR_COLLISION_DELETE = (
    "item key {key} of table {table}: this change would delete it as row {second}'s old item, but row {first} "
    "wrote it earlier in the same batch (two source rows gave one item key); the delete was not applied"
)
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


@dataclass(eq=False)
class ChangeRef:
    """The change an operation comes from, for one entity: what the quarantine records if it is bad."""

    entity: EntityMapping
    kind: str  # ChangeKind
    commit_lsn: int
    position: int  # the change's index in its transaction: stable when the change is decoded again
    source_key: dict[str, Any]  # column → value
    row: dict[str, Any]  # the row (the new one; a DELETE's old one), as the source typed it
    owner: str  # the source row's identity: entity and encoded source key
    previous: str  # an UPDATE's old row's identity (another when the source key itself changed)

    @property
    def order(self) -> tuple[int, int]:
        return self.commit_lsn, self.position

    def row_json(self) -> dict[str, Any]:
        return row_json(self.row)  # only for a bad change: most changes never pay for it


@dataclass
class Operation:
    table: str
    key: tuple[Any, ...]
    key_names: tuple[str, ...]
    item: dict[str, Any] | None  # None: delete
    source: ChangeRef | None = None


@dataclass
class BadChange:
    change: ChangeRef
    reason: str


@dataclass
class ApplyOutcome:
    changes: int = 0
    puts: int = 0
    deletes: int = 0
    operations: list[Operation] = field(default_factory=list)
    bad: list[BadChange] = field(default_factory=list)


@dataclass
class Batch:
    """What a source's capture read in one step (slots.PgCapture, binlog.BinlogCapture)."""

    transactions: list[Transaction]  # committed ones with changes, in commit order
    complete: bool  # everything committed before the step began was read (not cut at the batch limit)
    end: int  # the position to confirm once they are written (0: none)


@dataclass
class WriteOutcome:
    puts: int = 0
    deletes: int = 0
    bad: list[BadChange] = field(default_factory=list)


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

    def __init__(
        self,
        *,
        context: PlanContext,
        type_names: Callable[[RelationMessage], list[str]],
        rows: Callable[..., list[tuple[dict[str, Any], bool]]] | None = None,
    ) -> None:
        """``type_names(relation)``: each column's declared type; ``rows(relation, columns=, tuples=)``: the
        source's typing of changed rows (PostgreSQL's ``rows_from_text``, the default; MySQL's
        ``rows_from_binlog``), each with whether it passes the DMS filters."""
        self.context = context
        self.type_names = type_names
        self.rows = rows or context.source.rows_from_text
        self.by_table: dict[tuple[str, str], list[EntityMapping]] = {}
        for entity in context.entities:
            self.by_table.setdefault((entity.schema, entity.table), []).append(entity)

    def operations(self, transactions: list[Transaction], relations: dict[int, RelationMessage]) -> ApplyOutcome:
        outcome = ApplyOutcome()
        # 1. every tuple to convert, per relation, in order
        wanted: dict[int, list[list[str | None]]] = {}
        plans: list[tuple[Transaction, int, Any, int | None, int | None]] = []  # position, change, old, new

        def want(oid: int, values: list[str | None]) -> int:
            rows = wanted.setdefault(oid, [])
            rows.append(values)
            return len(rows) - 1

        for transaction in transactions:
            for position, change in enumerate(transaction.changes):
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
                plans.append((transaction, position, change, old_index, new_index))
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
                converted[oid][entity.name] = self.rows(source_relation, columns=columns, tuples=tuples)
        # 3. operations, in commit order; a new row that cannot become an item is a bad change
        for transaction, position, change, old_index, new_index in plans:
            relation = relations[change.relation_oid]
            kind = _KINDS[type(change)]
            for entity in self.by_table[(relation.schema, relation.table)]:
                rows = converted[change.relation_oid][entity.name]
                old_row = new_row = None
                old_key = None
                if old_index is not None:
                    old_row, old_matched = rows[old_index]
                    if old_matched:
                        old_key = self._key_or_none(entity, old_row)
                new_item = None
                problem = ""
                if new_index is not None:
                    new_row, new_matched = rows[new_index]
                    if new_matched:
                        new_item, problem = self._item(entity, new_row)
                ref = self._ref(entity, kind, transaction, position, new_row, old_row)
                new_key = item_key(new_item, entity.key_names) if new_item is not None else None
                if old_key is not None and old_key != new_key:
                    # a key change, a row leaving the filters, a DELETE, or a bad new row (no stale item)
                    outcome.operations.append(Operation(entity.target_table, old_key, entity.key_names, None, ref))
                if new_item is not None:
                    outcome.operations.append(Operation(entity.target_table, new_key, entity.key_names, new_item, ref))
                if problem:
                    outcome.bad.append(BadChange(ref, problem))
        outcome.operations = self._collisions_settled(outcome.operations, outcome.bad)
        return outcome

    def _ref(
        self,
        entity: EntityMapping,
        kind: str,
        transaction: Transaction,
        position: int,
        new_row: dict[str, Any] | None,
        old_row: dict[str, Any] | None,
    ) -> ChangeRef:
        row = new_row if new_row is not None else old_row
        # The key as checkpointed (a text with a NUL as {"$text": base64}): the quarantine's allowance counts
        # distinct source rows by it, and the NUL's text form would merge such a key with one holding "\\u0000".
        source_key = dict(zip(self.context.source.relation(entity).key, row[KEY], strict=True))
        owner = _identity(entity, row)
        previous = _identity(entity, old_row) if old_row is not None else owner
        return ChangeRef(entity, kind, transaction.commit_lsn, position, source_key, row, owner, previous)

    @staticmethod
    def _item(entity: EntityMapping, row: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """(item, "") or (None, why the row cannot become one)."""
        if row.get(ROW_ERROR):
            return None, row[ROW_ERROR]
        try:
            item = entity.transform(row)
            item_key(item, entity.key_names)
        except RowError as exc:
            return None, exc.message
        return item, ""

    @staticmethod
    def _key_or_none(entity: EntityMapping, row: dict[str, Any]) -> tuple[Any, ...] | None:
        """The item key the row had; None when the row could never become an item (nothing to delete)."""
        item, _problem = ChangeApplier._item(entity, row)
        return None if item is None else item_key(item, entity.key_names)

    def _collisions_settled(self, operations: list[Operation], bad: list[BadChange]) -> list[Operation]:
        """Two source rows on one item key within the batch (``key-collisions: "error"``): the later is bad.

        Per item key, the row that last put it owns it; its own delete (a key change, a DELETE, a bad new
        row) frees it. A put or a delete by another row while it is owned is the collision: that operation
        is dropped (the owner's item stays) and its change quarantined, naming both source keys.
        """
        owners: dict[tuple[str, tuple[Any, ...]], ChangeRef | None] = {}
        kept = []
        for operation in operations:
            ref = operation.source
            if ref is None or ref.entity.collisions == "last-wins":
                kept.append(operation)
                continue
            slot = (operation.table, operation.key)
            owner = owners.get(slot)
            if owner is not None and owner.owner not in (ref.owner, ref.previous):
                template = ERR_COLLISION if operation.item is not None else ERR_COLLISION_DELETE
                reason = template.format(
                    key=dict(zip(operation.key_names, [str(v) for v in operation.key], strict=True)),
                    table=operation.table,
                    first=_shown(owner.source_key),  # a person reads it: a NUL key as its text
                    second=_shown(ref.source_key),
                )
                bad.append(BadChange(ref, reason))
                continue
            owners[slot] = ref if operation.item is not None else None
            kept.append(operation)
        return kept


def _lsn(transaction: Transaction) -> str:
    return lsn_to_text(transaction.commit_lsn)


def _identity(entity: EntityMapping, row: dict[str, Any]) -> str:
    return json.dumps([entity.name, row[KEY]], default=str)


_KINDS = {Insert: ChangeKind.INSERT.value, Update: ChangeKind.UPDATE.value, Delete: ChangeKind.DELETE.value}


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


def operations_write(operations: list[Operation], *, fence: Callable[[], None]) -> WriteOutcome:
    """Write the reduced operations; ``fence()`` runs before each table's writes (raises if the lease is lost).

    A table's batch with an item the codec or DynamoDB refuses is written again item by item: the refused
    puts come back as bad changes (and delete their key instead), the rest is written.
    """
    outcome = WriteOutcome()
    for table, entries in operations_reduce(operations).items():
        fence()
        try:
            _batch(table, entries)
        except ITEM_ERRORS + (DynamoDBError,) as exc:
            if isinstance(exc, DynamoDBError) and not page_refused(exc):
                raise
            entries = _one_by_one(table, entries, outcome.bad)
        outcome.puts += sum(1 for entry in entries if entry.item is not None)
        outcome.deletes += sum(1 for entry in entries if entry.item is None)
    return outcome


def _key_of(entry: Operation) -> dict[str, Any]:
    return dict(zip(entry.key_names, entry.key, strict=True))


def _batch(table: str, entries: list[Operation]) -> None:
    dynamodb_batch_write(
        table=table,
        items=[entry.item for entry in entries if entry.item is not None],
        delete_keys=[_key_of(entry) for entry in entries if entry.item is None],
        key_names=entries[0].key_names,
        on_duplicate="raise",
        concurrency=settings.LIZZY_MIGRATION_WRITE_CONCURRENCY,
    )


def _shown(source_key: dict[str, Any]) -> dict[str, Any]:
    return dict(zip(source_key, key_shown(list(source_key.values())), strict=True))


def _refused(entry: Operation, exc: Exception, bad: list[BadChange]) -> Operation:
    """A refused put: its change is bad, and its key is deleted (the old item would be stale)."""
    if entry.source is not None:
        bad.append(BadChange(entry.source, item_problem(exc)))
    return Operation(entry.table, entry.key, entry.key_names, None, entry.source)


def _one_by_one(table: str, entries: list[Operation], bad: list[BadChange]) -> list[Operation]:
    """Something in the batch was refused: find it item by item, write the rest; the operations written."""
    checked = []
    for entry in entries:
        if entry.item is not None:
            try:
                serialize_checked(entry.item)
            except ITEM_ERRORS as exc:
                entry = _refused(entry, exc, bad)
        checked.append(entry)
    try:
        _batch(table, checked)
        return checked
    except DynamoDBError as exc:
        if not page_refused(exc):
            raise
    written = []
    for entry in checked:  # DynamoDB refused the batch (a key of the wrong type, say): one request each
        try:
            if entry.item is not None:
                dynamodb_put_item(table=table, item=entry.item)
            else:
                dynamodb_delete_item(table=table, key=_key_of(entry))
            written.append(entry)
            continue
        except DynamoDBError as exc:
            if not page_refused(exc):
                raise
            if entry.item is None:
                continue  # a key DynamoDB refuses holds no item: the delete has nothing to remove
            entry = _refused(entry, exc, bad)
        try:
            dynamodb_delete_item(table=table, key=_key_of(entry))
        except DynamoDBError as exc:
            if not page_refused(exc):
                raise
            # DynamoDB refuses the key itself (a type the table's key schema does not have): no item can
            # be stored under it, so there is nothing stale to delete.
        written.append(entry)
    return written
