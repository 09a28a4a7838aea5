"""The load stage: a page of source rows → items → BatchWriteItem, with every bad row named and set aside.

For each row: transform (a row that cannot become an item is a *bad row*), then the item key is claimed in
the run's key ledger: two source rows that give one item key are an error naming both source keys (the
default), or, under the rule's documented ``key-collisions: "last-wins"``, the later row wins and the
earlier one is counted as skipped. The page is then written with ``dynamodb_batch_write``; if DynamoDB or
the codec refuses something in it (an item over 400 KB, a value it cannot store, a key of the wrong type),
the page is written again item by item so that only the offending rows are set aside (PutRequest is a full
overwrite: writing a good item twice is harmless). Bad rows go back to the caller, which quarantines them.

The ledger holds one entry per item key a run wrote in this process (about 200 bytes each). Segments run
by separate Celery workers have separate ledgers: a collision between two of them is caught by
validation's count reconciliation (source rows ≠ target items), which the cutover guard requires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from lizzy.dynamodb import (
    BatchChunk,
    BatchWriteResult,
    CodecError,
    DuplicateKeysInBatch,
    DynamoDBError,
    ItemTooLarge,
    batch_write_chunks,
    dynamodb_batch_write,
    dynamodb_put_item,
    serialize_checked,
)
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.sources import KEY, Relation
from migration_app.sources.base import ROW_ERROR, encode_key_value

ERR_COLLISION = (
    "item key {key} of table {table} comes from two source rows: {first} (written first) and {second}; "
    "the rule's key attributes do not identify a source row (set key-collisions: last-wins to keep the later)"
)
ERR_KEY_TYPE = "key attribute {name!r} is a {type}; DynamoDB keys are strings, numbers or binary"
ERR_TOO_LARGE_ROW = "the item is {size} bytes; DynamoDB's item limit is {limit} bytes (400 KB)"
ERR_REFUSED_ROW = "DynamoDB refused the item: {problem}"
ROW_TEXT_LIMIT = 2000  # characters of one value kept in the quarantine (a 400 KB value is not copied whole)
ITEM_ERRORS = (CodecError, ItemTooLarge, DuplicateKeysInBatch)
_KEY_TYPES = frozenset({str, int, bytes, Decimal})  # what a DynamoDB key can be (S, N, B); bool is not


@dataclass
class BadRow:
    source_key: dict[str, Any]
    reason: str
    row: dict[str, Any]


@dataclass
class PageOutcome:
    written: int = 0
    skipped: int = 0
    bytes: int = 0
    unprocessed_retries: int = 0
    throttle_retries: int = 0
    bad: list[BadRow] = field(default_factory=list)


class KeyLedger:
    """Item key → the source key that wrote it, for every item of a run written in this process."""

    def __init__(self) -> None:
        self._owners: dict[tuple[str, tuple[Any, ...]], list[Any]] = {}

    def claim(self, table: str, key: tuple[Any, ...], source_key: list[Any]) -> list[Any] | None:
        """None when ``key`` is free or already this source key's; otherwise the other source key.

        No lock: ``dict.setdefault`` with a key of str/int/bytes/Decimal is one atomic step under the GIL
        (hashing and comparing them runs no Python code), so two segment threads cannot both win a key.
        """
        owner = self._owners.setdefault((table, key), source_key)
        return None if owner == source_key else owner


def source_key_of(row: dict[str, Any], relation: Relation) -> dict[str, Any]:
    return dict(zip(relation.key, row[KEY], strict=True))


def row_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        if name in (KEY, ROW_ERROR):
            continue
        encoded = encode_key_value(value) if not isinstance(value, (dict, list)) else value
        try:
            text = json.dumps(encoded, default=encode_key_value)  # nested values (Unreadable too) by their text
        except (TypeError, ValueError):
            text = json.dumps(str(value))
        out[name] = json.loads(text) if len(text) <= ROW_TEXT_LIMIT else text[:ROW_TEXT_LIMIT] + "…"
    return out


def item_problem(exc: Exception) -> str:
    if isinstance(exc, ItemTooLarge):
        return ERR_TOO_LARGE_ROW.format(size=exc.details.get("size"), limit=exc.details.get("limit"))
    if isinstance(exc, DynamoDBError):
        return ERR_REFUSED_ROW.format(problem=exc.message.split(": ", 1)[-1])
    return exc.message if hasattr(exc, "message") else str(exc)


def item_key(item: dict[str, Any], key_names: tuple[str, ...]) -> tuple[Any, ...]:
    """The item's key; RowError when an attribute is of a type DynamoDB keys cannot have."""
    key = tuple(item[name] for name in key_names)
    for name, value in zip(key_names, key, strict=True):
        if type(value) not in _KEY_TYPES:
            raise RowError(ERR_KEY_TYPE.format(name=name, type=type(value).__name__))
    return key


def _refused_by_dynamodb(exc: Exception) -> bool:
    return isinstance(exc, DynamoDBError) and getattr(exc, "aws_code", "") == "ValidationException"


def page_load(
    *, entity: EntityMapping, rows: list[dict[str, Any]], relation: Relation, ledger: KeyLedger
) -> PageOutcome:
    """Transform and write one page; bad rows are returned (not written), the rest written."""
    outcome, entries = _page_items(entity, rows, relation, ledger)
    if not entries:
        return outcome
    try:
        _batch(outcome, entity.target_table, entity.key_names, [item for item, _row in entries])
    except ITEM_ERRORS + (DynamoDBError,) as exc:
        if isinstance(exc, DynamoDBError) and not _refused_by_dynamodb(exc):
            raise
        _one_by_one(outcome, entity.target_table, entity.key_names, entries, relation)
    return outcome


@dataclass
class PreparedPage:
    """A page transformed and serialized (``page_prepare``), its chunks not sent yet."""

    outcome: PageOutcome
    entries: list[tuple[dict[str, Any], dict[str, Any]]]
    chunks: list[BatchChunk]


def page_prepare(
    *, entity: EntityMapping, rows: list[dict[str, Any]], relation: Relation, ledger: KeyLedger
) -> PreparedPage:
    """``page_load`` for a pipeline: the page's chunks ready to send, written by the caller's ``BatchWriter``.

    A page with an item the codec refuses (too large, a value DynamoDB cannot hold, two rows of one key in
    a chunk) is written here, item by item as ``page_load`` does: it comes back with no chunks.
    """
    outcome, entries = _page_items(entity, rows, relation, ledger)
    if not entries:
        return PreparedPage(outcome, entries, [])
    try:
        chunks = batch_write_chunks(
            table=entity.target_table, items=[item for item, _row in entries], key_names=entity.key_names
        )
    except ITEM_ERRORS:
        _one_by_one(outcome, entity.target_table, entity.key_names, entries, relation)
        return PreparedPage(outcome, entries, [])
    return PreparedPage(outcome, entries, chunks)


def page_chunk_written(page: PreparedPage, result: BatchWriteResult) -> None:
    """Count one of the page's chunks that DynamoDB accepted."""
    page.outcome.written += result.written
    page.outcome.bytes += result.bytes
    page.outcome.unprocessed_retries += result.unprocessed_retries
    page.outcome.throttle_retries += result.throttle_retries


def page_refused(exc: Exception) -> bool:
    """A chunk's error that means "find the refused item one by one" (``page_rewrite``), not "stop"."""
    return _refused_by_dynamodb(exc)


def page_rewrite(*, page: PreparedPage, entity: EntityMapping, relation: Relation) -> None:
    """DynamoDB refused one of the page's chunks: the whole page again, item by item (a full overwrite)."""
    outcome = page.outcome
    outcome.written = outcome.bytes = 0
    _one_by_one(outcome, entity.target_table, entity.key_names, page.entries, relation)


def _page_items(
    entity: EntityMapping, rows: list[dict[str, Any]], relation: Relation, ledger: KeyLedger
) -> tuple[PageOutcome, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Rows → items: bad rows set aside, key collisions settled; the items to write, with their rows."""
    outcome = PageOutcome()
    key_names = entity.key_names
    table = entity.target_table
    last_wins = entity.collisions == "last-wins"
    pending: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
    for row in rows:
        if row.get(ROW_ERROR):
            outcome.bad.append(BadRow(source_key_of(row, relation), row[ROW_ERROR], row_json(row)))
            continue
        try:
            item = entity.transform(row)
            key = item_key(item, key_names)
        except RowError as exc:
            outcome.bad.append(BadRow(source_key_of(row, relation), exc.message, row_json(row)))
            continue
        if last_wins:
            if key in pending:
                outcome.skipped += 1
                del pending[key]  # re-inserted below: the later row is written, in its own position
            pending[key] = (item, row)
            continue
        owner = ledger.claim(table, key, row[KEY])
        if owner is not None:
            reason = ERR_COLLISION.format(
                key=dict(zip(key_names, [str(v) for v in key], strict=True)),
                table=table,
                first=dict(zip(relation.key, owner, strict=True)),
                second=source_key_of(row, relation),
            )
            outcome.bad.append(BadRow(source_key_of(row, relation), reason, row_json(row)))
            continue
        pending[key] = (item, row)
    return outcome, list(pending.values())


def _batch(outcome: PageOutcome, table: str, key_names: tuple[str, ...], items: list[dict[str, Any]]) -> None:
    result = dynamodb_batch_write(
        table=table,
        items=items,
        key_names=key_names,
        on_duplicate="raise",
        # The page is checkpointed only after all of its chunks are written, whatever their order.
        concurrency=settings.LIZZY_MIGRATION_WRITE_CONCURRENCY,
    )
    outcome.written += result.written
    outcome.bytes += result.bytes
    outcome.unprocessed_retries += result.unprocessed_retries
    outcome.throttle_retries += result.throttle_retries


def _one_by_one(outcome, table, key_names, entries, relation) -> None:
    """Something in the page was refused: find it item by item, write the rest."""
    good = []
    for item, row in entries:
        try:
            serialize_checked(item)
        except ITEM_ERRORS as exc:
            outcome.bad.append(BadRow(source_key_of(row, relation), item_problem(exc), row_json(row)))
            continue
        good.append((item, row))
    try:
        _batch(outcome, table, key_names, [item for item, _row in good])
        return
    except DynamoDBError as exc:
        if not _refused_by_dynamodb(exc):
            raise
    for item, row in good:  # DynamoDB refused the batch (a key of the wrong type, say): one PutItem each
        try:
            dynamodb_put_item(table=table, item=item)
            outcome.written += 1
        except DynamoDBError as exc:
            if not _refused_by_dynamodb(exc):
                raise
            outcome.bad.append(BadRow(source_key_of(row, relation), item_problem(exc), row_json(row)))
