"""PostgreSQL's built-in ``pgoutput`` logical decoding messages (protocol version 1), parsed.

The layouts are those of the PostgreSQL manual, "Logical Replication Message Formats": every message
starts with one type byte; integers are big-endian; strings are NUL-terminated; a tuple is Int16 column
count then, per column, ``n`` (NULL), ``u`` (an unchanged TOASTed value the server did not send) or
``t`` + Int32 length + the value in the type's text output. Version 1 has no streaming, so no message
carries a transaction id except Begin.

Only what the CDC worker needs is kept: Begin, Commit, Relation, Insert, Update, Delete, Truncate.
Origin and Type messages are skipped (the worker types columns itself from the Relation's type OIDs).
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # pgoutput timestamps: microseconds since this instant
UNCHANGED = object()  # a 'u' column: an unchanged TOASTed value, not sent (take it from the old row)

ERR_MESSAGE = "Cannot parse a pgoutput message of type {kind!r}: {problem}"


class PgoutputError(ValueError):
    pass


def lsn_to_int(text: str) -> int:
    """``16/B374D848`` → 0x16B374D848."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_to_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool


@dataclass(frozen=True)
class RelationMessage:
    oid: int
    schema: str
    table: str
    replica_identity: str  # d (default), n (nothing), f (full), i (index)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: dt.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: dt.datetime


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple


@dataclass(frozen=True)
class Update:
    relation_oid: int
    old: tuple | None  # present with REPLICA IDENTITY FULL ('O') or when the key changed ('K')
    old_kind: str | None
    new: tuple


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: tuple
    old_kind: str


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass
class Transaction:
    """One committed transaction's changes, in the order the source made them."""

    xid: int
    commit_lsn: int = 0
    end_lsn: int = 0
    commit_time: dt.datetime | None = None
    changes: list = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, size: int) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise PgoutputError("message ends early")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def int8(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str:
        end = self.data.index(b"\0", self.position)
        text = self.data[self.position : end].decode()
        self.position = end + 1
        return text

    def byte(self) -> str:
        return chr(self.int8())

    def timestamp(self) -> dt.datetime:
        return PG_EPOCH + dt.timedelta(microseconds=self.int64())

    def tuple_data(self) -> tuple:
        values: list = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self.take(self.int32()).decode())
            else:
                raise PgoutputError(f"unknown tuple column kind {kind!r} (binary mode is not requested)")
        return tuple(values)


def message_parse(data: bytes):
    """One pgoutput message → Begin, Commit, RelationMessage, Insert, Update, Delete, Truncate or None."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    try:
        if kind == "B":
            return Begin(final_lsn=reader.int64(), commit_time=reader.timestamp(), xid=reader.uint32())
        if kind == "C":
            reader.int8()  # flags, unused
            return Commit(commit_lsn=reader.int64(), end_lsn=reader.int64(), commit_time=reader.timestamp())
        if kind == "R":
            oid, schema, table = reader.uint32(), reader.string(), reader.string()
            identity = reader.byte()
            columns = []
            for _ in range(reader.int16()):
                flags = reader.int8()
                columns.append(Column(reader.string(), reader.uint32(), reader.int32(), bool(flags & 1)))
            return RelationMessage(oid, schema or "pg_catalog", table, identity, tuple(columns))
        if kind == "I":
            oid = reader.uint32()
            if reader.byte() != "N":
                raise PgoutputError("an Insert without its new tuple")
            return Insert(oid, reader.tuple_data())
        if kind == "U":
            oid = reader.uint32()
            marker = reader.byte()
            old, old_kind = None, None
            if marker in ("K", "O"):
                old, old_kind = reader.tuple_data(), marker
                marker = reader.byte()
            if marker != "N":
                raise PgoutputError("an Update without its new tuple")
            return Update(oid, old, old_kind, reader.tuple_data())
        if kind == "D":
            oid = reader.uint32()
            marker = reader.byte()
            return Delete(oid, reader.tuple_data(), marker)
        if kind == "T":
            count = reader.int32()
            options = reader.int8()
            return Truncate(tuple(reader.uint32() for _ in range(count)), bool(options & 1), bool(options & 2))
        if kind in ("O", "Y", "M"):
            return None  # origin, type and logical messages carry nothing the worker applies
    except (PgoutputError, ValueError, IndexError, struct.error) as exc:
        raise PgoutputError(ERR_MESSAGE.format(kind=kind, problem=exc)) from exc
    raise PgoutputError(ERR_MESSAGE.format(kind=kind, problem="unknown message type"))


def transactions_parse(messages, relations: dict[int, RelationMessage]) -> list[Transaction]:
    """Messages (in slot order) → complete transactions; Relation messages update ``relations``.

    The SQL peek functions return whole transactions only (the manual: the row limit is checked after
    each commit), so a trailing transaction without its Commit means the input was cut: it is an error.
    """
    transactions: list[Transaction] = []
    current: Transaction | None = None
    for data in messages:
        message = message_parse(data)
        if message is None:
            continue
        if isinstance(message, RelationMessage):
            relations[message.oid] = message
        elif isinstance(message, Begin):
            current = Transaction(xid=message.xid)
        elif isinstance(message, Commit):
            if current is None:
                raise PgoutputError(ERR_MESSAGE.format(kind="C", problem="a Commit without its Begin"))
            current.commit_lsn, current.end_lsn, current.commit_time = (
                message.commit_lsn,
                message.end_lsn,
                message.commit_time,
            )
            transactions.append(current)
            current = None
        else:
            if current is None:
                raise PgoutputError(ERR_MESSAGE.format(kind=type(message).__name__, problem="a change outside a Begin"))
            current.changes.append(message)
    if current is not None:
        raise PgoutputError(ERR_MESSAGE.format(kind="B", problem="a transaction without its Commit"))
    return transactions
