"""The load stage: a page of source rows → items → BatchWriteItem, with every bad row named and set aside.

For each row: transform (a row that cannot become an item is a *bad row*), then the item key is claimed in
the unit's key ledger: two source rows that give one item key are an error naming both source keys (the
default), or, under the rule's documented ``key-collisions: "last-wins"``, the later row wins: in one
page the earlier one is not written and is counted as skipped; in an earlier page of the unit it was
written, and the later page is sent only once DynamoDB accepted the pages before it (``overwrites``), so
the later row is the one left. The page is then written with ``dynamodb_batch_write``; if DynamoDB or
the codec refuses something in it (an item over 400 KB, a value it cannot store, a key of the wrong type),
the page is written again item by item so that only the offending rows are set aside (PutRequest is a full
overwrite: writing a good item twice is harmless). Bad rows go back to the caller, which quarantines them.

The key ledger's scope is one work unit (``runs.segment_backfill`` makes one per unit it runs, a Celery
task and a ``migrate_to_dynamodb`` thread alike), so its memory is bounded by ``LIZZY_MIGRATION_UNIT_ROWS``
(100,000 by default), not by the table: an entry is a 16-byte BLAKE2b digest of the item key and the
source key, about 130 bytes with a one-column source key (tracemalloc, 100,000 entries), 13 MB for a unit
of 100,000 rows, freed when the unit ends. Two rows of one unit that give one item key are named (both
source keys), whichever pages they are in. Not seen by the ledger, and found instead by validation's count
reconciliation (source rows ≠ target items: the report is unclean and the cutover guard refuses): two rows
in different units (on one machine or many), and, in a unit resumed from its checkpoint with a new ledger
(a takeover after a lost lease, a redelivered task, ``run_reopen``; a transient error's retry keeps its
ledger), a row before the checkpoint and one after it. A false collision would need two keys of one unit
with one 128-bit digest: odds below 10^-28 at 100,000 keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
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
    DynamoDBThrottled,
    ItemTooLarge,
    batch_write_chunks,
    dynamodb_batch_write,
    dynamodb_put_item,
    serialize_checked,
    spent_of,
)
from migration_app.models import nul_escaped
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.sources import KEY, Relation
from migration_app.sources.base import ROW_ERROR, encode_key_value, key_shown

ERR_COLLISION = (
    "item key {key} of table {table} comes from two source rows: {first} (written first) and {second}; "
    "the rule's key attributes do not identify a source row (set key-collisions: last-wins to keep the later)"
)
ERR_KEY_TYPE = "key attribute {name!r} is a {type}; DynamoDB keys are strings, numbers or binary"
ERR_TOO_LARGE_ROW = "the item is {size} bytes; DynamoDB's item limit is {limit} bytes (400 KB)"
ERR_REFUSED_ROW = "DynamoDB refused the item: {problem}"
ROW_TEXT_LIMIT = 2000  # characters of one value kept in the quarantine (a 400 KB value is not copied whole)
ITEM_ERRORS = (CodecError, ItemTooLarge, DuplicateKeysInBatch)
KEY_DIGEST_BYTES = 16  # BLAKE2b-128: a false collision among 10^5 keys has odds below 10^-28
_KEY_TYPES = frozenset({str, int, bytes, Decimal})  # what a DynamoDB key can be (S, N, B); bool is not


@dataclass
class BadRow:
    source_key: dict[str, Any]
    reason: str
    row: dict[str, Any]

    def __post_init__(self) -> None:
        # quarantined, logged and quoted in the run's error as text PostgreSQL can hold
        self.source_key, self.reason, self.row = nul_escaped((self.source_key, self.reason, self.row))


@dataclass
class PageOutcome:
    written: int = 0
    skipped: int = 0
    # last-wins: items whose key an earlier page of the unit wrote; the page must be sent after those pages
    overwrites: int = 0
    bytes: int = 0
    bad: list[BadRow] = field(default_factory=list)


class KeyLedger:
    """Item key → the source key that wrote it, for every item of one work unit (see the module's docstring).

    Entries are compact: the item key as a 16-byte digest (``_key_digest``: the table's key types and
    DynamoDB's number equality, so ``1`` and ``Decimal("1.0")`` are one key, as they are in DynamoDB), the
    source key as its one value, or a tuple of its values.
    """

    def __init__(self) -> None:
        self._owners: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._owners)

    def claim(self, table: str, key: tuple[Any, ...], source_key: list[Any]) -> list[Any] | None:
        """None when ``key`` is free or already this source key's; otherwise the other source key.

        A unit's pages are prepared in one thread; ``dict.setdefault`` on a bytes key is one atomic step
        under the GIL besides, so two threads sharing a ledger could not both win a key.
        """
        compact = source_key[0] if len(source_key) == 1 else tuple(source_key)
        owner = self._owners.setdefault(_key_digest(table, key), compact)
        if owner == compact:
            return None
        return list(owner) if type(owner) is tuple else [owner]


def _key_digest(table: str, key: tuple[Any, ...]) -> bytes:
    """The item key as DynamoDB tells keys apart: by type (S, N, B) and value, numbers by numeric value."""
    digest = hashlib.blake2b(digest_size=KEY_DIGEST_BYTES)
    for value in (table, *key):
        if type(value) is str:
            kind, data = b"S", value.encode("utf-8", "surrogatepass")
        elif type(value) is bytes:
            kind, data = b"B", value
        else:
            kind, data = b"N", _number_text(value).encode()
        digest.update(kind + len(data).to_bytes(8, "big") + data)
    return digest.digest()


def _number_text(value: int | Decimal) -> str:
    """One text per numeric value (``100``, ``Decimal("1E+2")`` and ``Decimal("100.00")`` → ``1e2``), exact at
    any number of digits (``Decimal.normalize`` would round to the context's 28)."""
    if type(value) is int:
        sign, digits, exponent = value < 0, str(abs(value)), 0
    else:
        number = value.as_tuple()
        if not isinstance(number.exponent, int):  # NaN, Infinity: no DynamoDB number (the codec refuses it)
            return str(value)
        sign, digits, exponent = bool(number.sign), "".join(map(str, number.digits)), number.exponent
    stripped = digits.lstrip("0").rstrip("0")
    if not stripped:
        return "0"  # -0 and 0.00 are 0
    exponent += len(digits.lstrip("0")) - len(stripped)
    return f"{'-' if sign else ''}{stripped}e{exponent}"


def source_key_of(row: dict[str, Any], relation: Relation) -> dict[str, Any]:
    return dict(zip(relation.key, key_shown(row[KEY]), strict=True))


def row_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        if name in (KEY, ROW_ERROR):
            continue
        encoded = encode_key_value(value) if not isinstance(value, (dict, list, str)) else value
        try:
            text = json.dumps(encoded, default=encode_key_value)  # nested values (Unreadable too) by their text
        except (TypeError, ValueError):
            text = json.dumps(str(value))
        if len(text) > ROW_TEXT_LIMIT:
            out[name] = text[:ROW_TEXT_LIMIT] + "…"
        elif "\\ud" in text.lower() and not _utf8_ready(json.loads(text)):
            out[name] = text  # a lone surrogate: the quarantine's JSON column (UTF-8) holds its escaped text only
        else:
            out[name] = json.loads(text)
    return out


def _utf8_ready(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    *,
    entity: EntityMapping,
    rows: list[dict[str, Any]],
    relation: Relation,
    ledger: KeyLedger,
    on_chunk: Callable[[Any], None] | None = None,
) -> PageOutcome:
    """Transform and write one page; bad rows are returned (not written), the rest written. ``on_chunk`` is
    called after each call (a BatchWriteItem chunk, or a PutItem where DynamoDB refused a chunk and the page
    is written item by item: a unit's lease kept alive), with its ``BatchWriteResult``: what a page's calls
    consume is counted by the caller from these (a refused chunk's rewrite costs both writes), and from a
    ``BatchWriteIncomplete``'s ``write_units`` and retries; what ``on_chunk`` raises stops the page."""
    outcome, entries = _page_items(entity, rows, relation, ledger)
    if not entries:
        return outcome
    try:
        _batch(outcome, entity.target_table, entity.key_names, [item for item, _row in entries], on_chunk)
    except ITEM_ERRORS + (DynamoDBError,) as exc:
        if isinstance(exc, DynamoDBError) and not _refused_by_dynamodb(exc):
            raise
        _spent_told(exc, on_chunk)
        _one_by_one(outcome, entity.target_table, entity.key_names, entries, relation, on_chunk)
    return outcome


def _spent_told(exc: Exception, on_chunk: Callable[[Any], None] | None) -> None:
    """An error handled here (the page then written item by item): what its failed calls consumed goes to
    ``on_chunk`` as one more result, so the caller counts it. An error raised on carries it (``spent_of``)."""
    spent = spent_of(exc)
    if spent is not None and on_chunk is not None:
        on_chunk(spent)


@dataclass
class PreparedPage:
    """A page transformed and serialized (``page_prepare``), its chunks not sent yet."""

    outcome: PageOutcome
    entries: list[tuple[dict[str, Any], dict[str, Any]]]
    chunks: list[BatchChunk]
    refused: bool = False  # the codec refused an item: no chunks, the caller writes it with ``page_rewrite``


def page_prepare(
    *, entity: EntityMapping, rows: list[dict[str, Any]], relation: Relation, ledger: KeyLedger
) -> PreparedPage:
    """``page_load`` for a pipeline: the page's chunks ready to send, written by the caller's ``BatchWriter``.

    A page with an item the codec refuses (too large, a value DynamoDB cannot hold, two rows of one key in
    a chunk) comes back ``refused``, with no chunks: the caller writes it item by item (``page_rewrite``),
    in its turn (after the pages before it, where a last-wins overwrite needs that).
    """
    outcome, entries = _page_items(entity, rows, relation, ledger)
    if not entries:
        return PreparedPage(outcome, entries, [])
    try:
        chunks = batch_write_chunks(
            table=entity.target_table, items=[item for item, _row in entries], key_names=entity.key_names
        )
    except ITEM_ERRORS:
        return PreparedPage(outcome, entries, [], refused=True)
    return PreparedPage(outcome, entries, chunks)


def page_chunk_written(page: PreparedPage, result: BatchWriteResult) -> None:
    """Count one of the page's chunks that DynamoDB accepted (the items and bytes that stand; what the call
    consumed is the caller's to count, as ``page_load`` says)."""
    page.outcome.written += result.written
    page.outcome.bytes += result.bytes


def page_refused(exc: Exception) -> bool:
    """A chunk's error that means "find the refused item one by one" (``page_rewrite``), not "stop"."""
    return _refused_by_dynamodb(exc)


def page_rewrite(
    *, page: PreparedPage, entity: EntityMapping, relation: Relation, on_chunk: Callable[[Any], None] | None = None
) -> None:
    """DynamoDB refused one of the page's chunks: the whole page again, item by item (a full overwrite).
    ``on_chunk``: as ``page_load``'s, after each call (a BatchWriteItem chunk or a PutItem)."""
    outcome = page.outcome
    outcome.written = outcome.bytes = 0
    _one_by_one(outcome, entity.target_table, entity.key_names, page.entries, relation, on_chunk)


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
            elif ledger.claim(table, key, row[KEY]) is not None:
                outcome.overwrites += 1  # an earlier page of the unit wrote this key: sent after that page
            pending[key] = (item, row)
            continue
        owner = ledger.claim(table, key, row[KEY])
        if owner is not None:
            reason = ERR_COLLISION.format(
                key=dict(zip(key_names, [str(v) for v in key], strict=True)),
                table=table,
                first=dict(zip(relation.key, key_shown(owner), strict=True)),
                second=source_key_of(row, relation),
            )
            outcome.bad.append(BadRow(source_key_of(row, relation), reason, row_json(row)))
            continue
        pending[key] = (item, row)
    return outcome, list(pending.values())


def _batch(
    outcome: PageOutcome, table: str, key_names: tuple[str, ...], items: list[dict[str, Any]], on_chunk=None
) -> None:
    # Items and bytes count once, from the writes that stand; each chunk that landed reaches ``on_chunk``
    # whether or not the batch as a whole succeeds (a chunk refused: the page then written item by item).
    result = dynamodb_batch_write(
        table=table,
        items=items,
        key_names=key_names,
        on_duplicate="raise",
        on_chunk=on_chunk,
        # The page is checkpointed only after all of its chunks are written, whatever their order.
        concurrency=settings.LIZZY_MIGRATION_WRITE_CONCURRENCY,
    )
    outcome.written += result.written
    outcome.bytes += result.bytes


def _one_by_one(outcome, table, key_names, entries, relation, on_chunk=None) -> None:
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
        _batch(outcome, table, key_names, [item for item, _row in good], on_chunk)
        return
    except DynamoDBError as exc:
        if not _refused_by_dynamodb(exc):
            raise
        _spent_told(exc, on_chunk)
    for item, row in good:  # DynamoDB refused the batch (a key of the wrong type, say): one PutItem each
        call = BatchWriteResult(calls=1)
        try:
            call.write_units = dynamodb_put_item(table=table, item=item)
            call.written = 1
            outcome.written += 1
        except Exception as exc:
            if not _refused_by_dynamodb(exc):
                call.throttle_retries = int(isinstance(exc, DynamoDBThrottled))
                exc.spent = call  # counted where it is handled (a unit's retry), as a BatchWriteItem's would be
                raise
            outcome.bad.append(BadRow(source_key_of(row, relation), item_problem(exc), row_json(row)))
        if on_chunk is not None:
            on_chunk(call)
