"""The source side of change capture: publication, replication slot, peek, advance, lag (SQL functions).

Why SQL functions on an ordinary psycopg 3 connection rather than the streaming replication protocol:
``pg_logical_slot_peek_binary_changes`` reads from the slot *without* consuming it, and
``pg_replication_slot_advance`` moves the slot only when we say so, i.e. after DynamoDB accepted the
writes. That is the whole resume story (a worker killed anywhere re-reads from the last advance) and it
needs no replication-protocol client (psycopg 3 has none that is complete; psycopg#1219), no
``replication`` connection and no standby-status heartbeats. The price is a poll (one call per loop)
instead of a push, measured in bench/cdc.py.

Why ``pgoutput``: it ships with PostgreSQL (RDS and Aurora included: no extension to install), filters
by publication (only the plan's tables are decoded into messages), and its Relation messages carry each
column's type OID, so values are typed exactly as the backfill's SELECT types them. ``test_decoding``
prints values in a text format meant for tests (quoted, type names inline) and filters nothing;
``wal2json`` is a package to install on every source (not on every RDS version).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg
from psycopg import sql

from migration_app.cdc.apply import Batch, ChangeApplier
from migration_app.cdc.pgoutput import RelationMessage, lsn_to_int, lsn_to_text, transactions_parse
from migration_app.models import CdcStream
from migration_app.services.plans import PlanContext

PROTO_VERSION = "1"
ERR_SLOT_GONE = "Plan {plan}: the replication slot {slot} no longer exists on the source; change capture stopped."
DROP_ATTEMPTS = 20  # a slot is "active" for the length of one peek call by its worker: wait that out
DROP_RETRY_SECONDS = 0.25


def source_connect(url: str) -> psycopg.Connection:
    """An autocommit connection: slot creation refuses a transaction that has written anything."""
    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def _qualified(table: str) -> sql.Composed:
    schema, name = table.split(".", 1)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def replica_identity_full(connection: psycopg.Connection, tables: list[str]) -> None:
    """Old rows in full on UPDATE and DELETE: the item key of a deleted or re-keyed row may be built
    from any column (``SKU#${sku}``), and an UPDATE does not resend unchanged TOASTed values."""
    for table in tables:
        connection.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(_qualified(table)))


def publication_create(connection: psycopg.Connection, name: str, tables: list[str]) -> None:
    statement = sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
        sql.Identifier(name), sql.SQL(", ").join(_qualified(table) for table in tables)
    )
    connection.execute(statement)


def publication_drop(connection: psycopg.Connection, name: str) -> None:
    connection.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))


def slot_create(connection: psycopg.Connection, name: str, *, timeout_seconds: float) -> int:
    """Create the logical slot; returns the LSN from which it captures every committed change.

    PostgreSQL finishes creating it only when every transaction in progress on the *whole server* (any
    database) has ended: a long transaction elsewhere delays it, and one held open by the caller
    itself would wait forever. ``timeout_seconds`` turns that wait into an error.
    """
    connection.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(int(timeout_seconds * 1000))))
    try:
        row = connection.execute(
            "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", [name]
        ).fetchone()
    finally:
        connection.execute("RESET statement_timeout")
    return lsn_to_int(row[0])


def slot_exists(connection: psycopg.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [name]).fetchone() is not None


def slot_drop(connection: psycopg.Connection, name: str) -> bool:
    """Drop the slot if it exists (True when it did). A worker's peek holds it briefly: retried."""
    for attempt in range(DROP_ATTEMPTS):
        if not slot_exists(connection, name):
            return False
        try:
            connection.execute("SELECT pg_drop_replication_slot(%s)", [name])
            return True
        except psycopg.errors.ObjectInUse:
            if attempt == DROP_ATTEMPTS - 1:
                raise
            time.sleep(DROP_RETRY_SECONDS)
        except psycopg.errors.UndefinedObject:
            return False
    return False  # pragma: no cover


def flush_lsn(connection: psycopg.Connection) -> int:
    """The source's flushed WAL end, after flushing every commit made so far.

    Decoding reads only flushed WAL. Under ``synchronous_commit = off`` a commit is acknowledged before its
    WAL is flushed, so the flushed end can lie behind commits a client already saw. A transaction of our
    own that writes WAL (a transactional logical message: no table needed), committed with
    ``synchronous_commit = on``, flushes the WAL up to its commit record and so every record before it:
    after it, every commit acknowledged before this call is below the returned position. (A transaction
    that only takes an xid writes no WAL before its commit and is not flushed: measured on PostgreSQL 18.)
    pgoutput sends logical messages only when asked (``messages``), so it decodes as an empty transaction.
    """
    with connection.transaction():
        connection.execute("SET LOCAL synchronous_commit = on")
        connection.execute("SELECT pg_logical_emit_message(true, 'lizzy_cdc_flush', '')")
    return lsn_to_int(connection.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0])


def slot_peek(
    connection: psycopg.Connection, *, slot: str, publication: str, upto_lsn: int, upto_changes: int
) -> list[bytes]:
    """pgoutput messages of the transactions committed before ``upto_lsn``, without consuming them."""
    rows = connection.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
        "'proto_version', %s, 'publication_names', %s)",
        [slot, lsn_to_text(upto_lsn), upto_changes, PROTO_VERSION, publication],
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def slot_advance(connection: psycopg.Connection, *, slot: str, lsn: int) -> None:
    connection.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, lsn_to_text(lsn)])


def slot_state(connection: psycopg.Connection, slot: str) -> dict[str, Any] | None:
    """Lag in bytes (the source's WAL end minus the slot's confirmed position), activity; None if absent."""
    row = connection.execute(
        "SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
        "active, wal_status FROM pg_replication_slots WHERE slot_name = %s",
        [slot],
    ).fetchone()
    if row is None:
        return None
    confirmed, lag, active, wal_status = row
    return {
        "confirmed_lsn": lsn_to_int(confirmed) if confirmed else 0,
        "lag_bytes": int(lag or 0),
        "active": bool(active),
        "wal_status": wal_status,
    }


def type_names(connection: psycopg.Connection, types: list[tuple[int, int]]) -> list[str]:
    """SQL type names (``numeric(38,0)``, ``public.mood``) for (type OID, type modifier) pairs."""
    names = []
    for oid, modifier in types:
        row = connection.execute("SELECT format_type(%s, %s)", [oid, modifier if modifier >= 0 else None]).fetchone()
        names.append(row[0])
    return names


def close_quietly(connection: psycopg.Connection | None) -> None:
    if connection is not None:
        with contextlib.suppress(psycopg.Error):
            connection.close()


class PgCapture:
    """What the worker, the streams and validation ask of a PostgreSQL source (binlog.BinlogCapture's twin)."""

    kind = "slot"

    def __init__(self, *, url: str, stream: CdcStream) -> None:
        self.url, self.stream = url, stream
        self.connection = source_connect(url)
        self.relations: dict[int, RelationMessage] = {}

    def position_int(self, text: str) -> int:
        return lsn_to_int(text) if text else 0

    def position_text(self, value: int) -> str:
        return lsn_to_text(value)

    def gone_message(self, *, plan: str) -> str:
        return ERR_SLOT_GONE.format(plan=plan, slot=self.stream.slot_name)

    def state(self, *, confirmed: str | None = None) -> dict[str, Any] | None:
        """The slot's own position and lag (``confirmed`` is not needed: the slot knows); None if gone."""
        return slot_state(self.connection, self.stream.slot_name)

    def end_position(self) -> int:
        return flush_lsn(self.connection)

    def read(self, *, confirmed: int, upto: int, limit: int) -> Batch:
        """Peek the transactions committed before ``upto`` (at most ``limit`` messages, whole transactions)."""
        messages = slot_peek(
            self.connection,
            slot=self.stream.slot_name,
            publication=self.stream.publication_name,
            upto_lsn=upto,
            upto_changes=limit,
        )
        complete = len(messages) < limit
        decoded = transactions_parse(messages, self.relations)
        transactions = [transaction for transaction in decoded if transaction.changes]  # empty ones carry nothing
        end = upto if complete else (decoded[-1].end_lsn if decoded else confirmed)
        return Batch(transactions, complete, end)

    def advance(self, *, position: int) -> None:
        slot_advance(self.connection, slot=self.stream.slot_name, lsn=position)

    def applier(self, context: PlanContext) -> ChangeApplier:
        types: dict[int, list[str]] = {}

        def names(relation: RelationMessage) -> list[str]:
            if relation.oid not in types:
                pairs = [(column.type_oid, column.type_modifier) for column in relation.columns]
                types[relation.oid] = type_names(self.connection, pairs)
            return types[relation.oid]

        return ChangeApplier(context=context, type_names=names)

    def close(self) -> None:
        close_quietly(self.connection)
