"""The MySQL / MariaDB source side of change capture: the row-based binlog, read from a file:position.

The worker's loop (lease, batch, apply, quarantine, confirm: worker.py) is the PostgreSQL one; what
differs is here.

- **Position.** ``file:position`` of the binlog (``mysql-bin.000042:1337``), the end of the last
  transaction applied. It works alike on MySQL and MariaDB (their GTIDs do not: MySQL's are
  ``uuid:n`` sets, MariaDB's ``domain-server-seq`` lists), and the library resumes from it directly. The
  price: a failover to another server (a promoted replica, an Aurora writer change) has other file names,
  and the stream must start over (roll back to setup), as a PostgreSQL slot does not survive one either.
- **No slot.** The server keeps nothing for us: the position lives only in the stream's row, written
  once DynamoDB accepted the writes before it. What keeps the binlog is the server's retention
  (``binlog_expire_logs_seconds``, ``expire_logs_days``; RDS: ``binlog retention hours``). A position
  whose file was purged cannot be resumed: the worker stops (``ERR_PURGED``) and the stream row records
  it (``source_lost_at``, an alarm): roll back to setup and start over.
- **Reading.** python-mysql-replication (pure Python, on PyMySQL) connects as a replica with
  ``COM_BINLOG_DUMP`` in non-blocking mode: the server sends what its binlog holds and then EOF. One
  batch is one such connection, from the confirmed position, ending at the first transaction end after
  ``LIZZY_CDC_BATCH_CHANGES`` row changes (whole transactions, as PostgreSQL's peek). The replica's
  ``server_id`` is ``replica_server_id``: a second worker with the same id makes the server drop the first
  (a second fence, beside the lease).
- **Transactions.** The binlog is in commit order. A transaction ends at its ``Xid`` event (InnoDB), or a
  ``COMMIT`` query (non-transactional tables); a statement outside a transaction (DDL) is one of its own.
  ``TRUNCATE`` of a captured table stops capture, as on PostgreSQL.
- **Rows.** ``binlog_row_image = FULL`` sends every column of the old and the new row (an item key may
  be built from any column); ``binlog_row_metadata = FULL`` puts the column names in the binlog, so a
  change is read with the columns it was written with, not the table's current ones. Both are checked
  when the stream starts and on every batch; ``binlog_format = ROW`` too (a statement cannot be
  replayed item by item), and a data change that still comes as a statement naming a captured table (a
  session's own ``binlog_format``) stops the reader (``ERR_STATEMENT``). Values are put right to what a
  SELECT returns in ``MysqlSource.rows_from_binlog``.
- **XA.** A two-phase XA transaction writes its rows in an ``XA PREPARE`` group (no Xid) and its outcome
  later in a group of its own: the reader stops there (``ERR_XA``) rather than apply or drop its rows.
  ``XA COMMIT ... ONE PHASE`` ends with an Xid and is an ordinary transaction.
- **Lag in bytes:** the binlog bytes from the confirmed position to the server's end (``SHOW BINARY LOGS``).
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import pymysql
from django.conf import settings
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

from lizzy.errors import ApplicationError, PreconditionFailed
from migration_app.cdc.apply import Batch, CdcApplyError, ChangeApplier
from migration_app.cdc.pgoutput import Column, Delete, Insert, RelationMessage, Transaction, Update
from migration_app.models import CdcStream
from migration_app.services.plans import PlanContext
from migration_app.services.types import Unreadable

CONNECT_TIMEOUT_SECONDS = 10
EVENTS = [GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent]
READ_TIMEOUT_SECONDS = 60
REQUIRED = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
_POSITION = re.compile(r"^(?P<file>.*?)(?P<index>\d+):(?P<pos>\d+)$")
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"})
_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:`?(?P<schema>[^`.\s]+)`?\.)?`?(?P<table>[^`\s;]+)`?", re.I)
# python-mysql-replication's reasons for a None that is not NULL
NONE_EMPTY_SET, NONE_NOT_SENT, NONE_PARTIAL_JSON = (
    NONE_SOURCE.EMPTY_SET,
    NONE_SOURCE.COLS_BITMAP,
    NONE_SOURCE.JSON_PARTIAL_UPDATE,
)
MARIADB_FL_STANDALONE = 1  # a GTID event's flag: the group is one statement, no BEGIN/COMMIT around it
NONE_OUT_OF_RANGE = (
    NONE_SOURCE.OUT_OF_DATE_RANGE,
    NONE_SOURCE.OUT_OF_DATETIME_RANGE,
    NONE_SOURCE.OUT_OF_DATETIME2_RANGE,
)

ERR_SERVER = (
    "The MySQL/MariaDB source at {host} cannot be captured: {problems}. Change data capture reads the row-based "
    "binlog: set log_bin, binlog_format=ROW, binlog_row_image=FULL and binlog_row_metadata=FULL (MariaDB 10.5+, "
    "MySQL 8.0.1+) on the server (RDS/Aurora: the DB parameter group), docs/DEPLOYMENT.md."
)
ERR_STATUS = (
    "The MySQL/MariaDB source at {host} reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?"
)
ERR_PURGED = (
    "Plan {plan}: binlog {file} (the stream's confirmed position {position}) is no longer on the source: it was "
    "purged (binlog_expire_logs_seconds / expire_logs_days; RDS: binlog retention hours) before the CDC worker "
    "read it, and the changes in it are lost to capture. Roll the plan back to setup and start over; keep the "
    "binlog longer than the worker can be stopped (docs/MIGRATIONS.md)."
)
ERR_READ = "Plan {plan}: reading the binlog from {position} failed: {problem}"
ERR_ROW_IMAGE = (
    "table {table}: a change at {position} came without column {column!r} (binlog_row_image is not FULL for it); "
    "change capture stopped. Set binlog_row_image=FULL, then roll the plan back to setup and start over."
)
ERR_TRUNCATE = (
    "TRUNCATE of {table} (at {position}) cannot be replayed item by item; change capture stopped. "
    "Roll the plan back to setup and run the backfill again."
)
ERR_STATEMENT = (
    "Plan {plan}: table {table} was written by a statement logged as such at {position} (that session's "
    "binlog_format was not ROW), which cannot be replayed item by item: change capture stopped before it. Keep "
    "binlog_format=ROW for every session (a privileged one can SET SESSION binlog_format), then roll the plan "
    "back to setup and start over."
)
ERR_XA = (
    "Plan {plan}: the binlog transaction before {position} ended without a commit: an XA PREPARE (a two-phase XA "
    "transaction, whose XA COMMIT or XA ROLLBACK comes later as a group of its own). Change capture does not "
    "follow XA transactions and stopped before it, with nothing after it applied. Write the captured tables "
    "without XA (or XA ... ONE PHASE), then roll the plan back to setup and start over."
)
REASON_OUT_OF_RANGE = "a zero or invalid date the binlog does not carry exactly ({source})"

# The server's character sets python-mysql-replication decodes otherwise than the server (by Python's codec of
# the same name): UTF-16, UCS-2 and UTF-32 are big-endian on the server (Python's utf16/utf32 read native order,
# ucs2 is not a codec: the bytes came through), and the server's latin1 is cp1252 with the five bytes cp1252
# leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) as the C1 controls (Python's cp1252 refused them: the reader
# raised). Keyed by the reader's encoding name for the column's character set.
MYSQL_LATIN1 = "lizzy_mysql_latin1"
EXACT_ENCODINGS = {
    "utf16": "utf-16-be",
    "ucs2": "utf-16-be",
    "utf32": "utf-32-be",
    "utf16le": "utf-16-le",
    "cp1252": MYSQL_LATIN1,
}
_LATIN1_TABLE = "".join(bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in range(256))
_LATIN1_ENCODING = codecs.charmap_build(_LATIN1_TABLE)
_LATIN1 = codecs.CodecInfo(
    name=MYSQL_LATIN1,
    encode=lambda text, errors="strict": codecs.charmap_encode(text, errors, _LATIN1_ENCODING),
    decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _LATIN1_TABLE),
)
codecs.register(lambda name: _LATIN1 if name == MYSQL_LATIN1 else None)
_reader_encoding = RowsEvent.charset_to_encoding


def _exact_encoding(name: str) -> str:
    encoding = _reader_encoding(name)
    return EXACT_ENCODINGS.get(str(encoding).lower(), encoding)


RowsEvent.charset_to_encoding = staticmethod(_exact_encoding)


class BinlogError(ApplicationError):
    code = "cdc_binlog_failed"


def position_parse(text: str) -> tuple[str, int]:
    """``mysql-bin.000042:1337`` → ("mysql-bin.000042", 1337)."""
    name, _sep, pos = text.rpartition(":")
    return name, int(pos)


def position_int(text: str) -> int:
    """A position as one number that orders like the binlog: the file's sequence number, then the offset."""
    match = _POSITION.match(text)
    if match is None:
        raise ValueError(f"not a binlog position (file:position): {text!r}")
    return (int(match["index"]) << 32) + int(match["pos"])


def position_text(file: str, pos: int) -> str:
    return f"{file}:{pos}"


def _url_settings(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": unquote(parsed.username or "root"),
        "password": unquote(parsed.password or ""),
    }


def source_connect(url: str) -> pymysql.Connection:
    """An autocommit control connection (server variables, positions, binlog list), no database needed."""
    options = _url_settings(url)
    return pymysql.connect(
        host=options["host"],
        port=options["port"],
        user=options["user"],
        password=options["password"],
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def _rows(connection: pymysql.Connection, sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def server_problems(connection: pymysql.Connection) -> list[str]:
    """What keeps this server from being captured ([] when nothing does)."""
    names = ", ".join(f"'{name}'" for name in REQUIRED)
    rows = _rows(connection, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
    found = {str(name).lower(): str(value).upper() for name, value in rows}
    problems = []
    for name, wanted in REQUIRED.items():
        value = found.get(name)
        if value is None:
            problems.append(f"{name} is not a variable of this server (too old)")
        elif value != wanted:
            problems.append(f"{name} is {value}, not {wanted}")
    return problems


def server_check(connection: pymysql.Connection, *, url: str) -> None:
    problems = server_problems(connection)
    if problems:
        raise PreconditionFailed(ERR_SERVER.format(host=_url_settings(url)["host"], problems="; ".join(problems)))


def master_position(connection: pymysql.Connection, *, url: str) -> str:
    """The server's binlog end as ``file:position``: every transaction committed so far is before it."""
    rows: list[tuple] = []
    for statement in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # MySQL 8.4 removed the first
        try:
            rows = _rows(connection, statement)
            break
        except pymysql.err.ProgrammingError:
            continue
    if not rows:
        raise PreconditionFailed(ERR_STATUS.format(host=_url_settings(url)["host"]))
    return position_text(str(rows[0][0]), int(rows[0][1]))


def binary_logs(connection: pymysql.Connection) -> list[tuple[str, int]]:
    """The binlog files the server still has, oldest first, with their sizes (``SHOW BINARY LOGS``)."""
    return [(str(row[0]), int(row[1])) for row in _rows(connection, "SHOW BINARY LOGS")]


def lag_bytes(logs: list[tuple[str, int]], position: str) -> int | None:
    """Binlog bytes after ``position``; None when its file is gone (purged)."""
    file, pos = position_parse(position)
    names = [name for name, _size in logs]
    if file not in names:
        return None
    start = names.index(file)
    return max(logs[start][1] - pos, 0) + sum(size for _name, size in logs[start + 1 :])


@dataclass
class BinlogBatch:
    transactions: list[Transaction]  # committed ones with changes to captured tables, in commit order
    complete: bool  # read up to the server's end (not cut at the batch limit)
    end: str  # the position after the last whole transaction read ('' when none)


def _tables(tables: list[str]) -> tuple[str, list[str]]:
    schemas = {table.split(".", 1)[0] for table in tables}
    return next(iter(schemas)), [table.split(".", 1)[1] for table in tables]


class BinlogReader:
    """Row events → pgoutput-shaped transactions (apply.py's input), with one relation per table layout."""

    def __init__(self, *, url: str, tables: list[str], server_id: int, plan: str) -> None:
        self.url, self.server_id, self.plan = url, server_id, plan
        self.schema, self.table_names = _tables(tables)
        self.relations: dict[int, RelationMessage] = {}
        self._ids: dict[tuple[str, str, tuple[str, ...]], int] = {}

    def _relation(self, event) -> RelationMessage:
        names = tuple(column.name for column in event.columns)
        slot = (event.schema, event.table, names)
        if slot not in self._ids:
            oid = len(self._ids) + 1
            self._ids[slot] = oid
            keys = set(getattr(event, "primary_key", None) or ())
            columns = tuple(Column(name, 0, -1, name in keys) for name in names)
            self.relations[oid] = RelationMessage(oid, event.schema, event.table, "f", columns)
        return self.relations[self._ids[slot]]

    def _values(self, relation: RelationMessage, values: dict[str, Any], none: dict[str, str], at: str) -> tuple:
        out = []
        for column in relation.columns:
            name = column.name
            if name not in values:
                raise BinlogError(ERR_ROW_IMAGE.format(table=_label(relation), position=at, column=name))
            value = values[name]
            if value is None:
                source = none.get(name, "null")
                if source == NONE_EMPTY_SET:
                    value = set()
                elif source in (NONE_NOT_SENT, NONE_PARTIAL_JSON):
                    raise BinlogError(ERR_ROW_IMAGE.format(table=_label(relation), position=at, column=name))
                elif source in NONE_OUT_OF_RANGE:
                    problem = REASON_OUT_OF_RANGE.format(source=source)
                    value = Unreadable(column=name, declared="", raw=None, problem=problem)
            out.append(value)
        return tuple(out)

    def read(self, *, start: str, limit: int, seconds: float) -> BinlogBatch:
        """Whole transactions from ``start`` to the server's end, cut at the first transaction end after
        ``limit`` captured changes or ``seconds`` of reading (a backlog of other tables' transactions is
        read past too: the cut keeps each step within the lease)."""
        deadline = time.monotonic() + seconds
        file, pos = position_parse(start)
        options = _url_settings(self.url)
        stream = BinLogStreamReader(
            connection_settings={**options, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            server_id=self.server_id,
            resume_stream=True,
            log_file=file,
            log_pos=pos,
            blocking=False,
            # file:position needs the classic COM_BINLOG_DUMP, which MariaDB serves too: the library's MariaDB
            # mode starts from a GTID only (it sends no file name)
            is_mariadb=False,
            only_events=EVENTS,
            only_schemas=[self.schema],
            only_tables=self.table_names,
            enable_logging=False,
        )
        transactions: list[Transaction] = []
        current = Transaction(xid=0)
        open_ = False  # inside a transaction (its GTID or BEGIN seen, its end not yet)
        began = False  # ... one that ends with an Xid or COMMIT (not a statement of its own)
        end, changes, complete = "", 0, True
        try:
            for event in stream:
                at = position_text(stream.log_file, stream.log_pos)
                if isinstance(event, (GtidEvent, MariadbGtidEvent)):
                    if open_ and current.changes:
                        # the group before ended with no Xid or COMMIT: its changes are not committed (yet)
                        raise BinlogError(ERR_XA.format(plan=self.plan, position=at))
                    current, open_ = Transaction(xid=0), True
                    # MariaDB marks a statement of its own (DDL) with FL_STANDALONE; MySQL sends BEGIN otherwise
                    began = isinstance(event, MariadbGtidEvent) and not (event.flags & MARIADB_FL_STANDALONE)
                elif isinstance(event, QueryEvent):
                    query = event.query if isinstance(event.query, str) else event.query.decode(errors="replace")
                    word = query.strip().split(None, 1)[0].upper() if query.strip() else ""
                    if word == "BEGIN":
                        open_ = began = True
                        continue
                    self._refuse_truncate(query, event, at)
                    if word in _DML:
                        self._refuse_statement(query, at)
                    if word == "COMMIT" or not began:
                        # the end of a transaction on non-transactional tables, or a statement of its own (DDL)
                        end = self._close(current, transactions, event, at)
                        current, open_, began = Transaction(xid=0), False, False
                elif isinstance(event, XidEvent):
                    end = self._close(current, transactions, event, at)
                    changes += len(current.changes)
                    current, open_, began = Transaction(xid=0), False, False
                    if changes >= limit or time.monotonic() >= deadline:
                        complete = False
                        break
                else:
                    open_ = True
                    self._changes(event, current, at)
            if open_:
                complete = False  # a transaction still being written: read again from its start
            elif complete:
                end = position_text(stream.log_file, stream.log_pos)
        except pymysql.MySQLError as exc:
            raise BinlogError(
                ERR_READ.format(
                    plan=self.plan, position=start, problem=exc.args[-1] if exc.args else type(exc).__name__
                )
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        return BinlogBatch(transactions, complete, end)

    def _close(self, current: Transaction, transactions: list[Transaction], event, at: str) -> str:
        if current.changes:
            current.commit_lsn = current.end_lsn = position_int(at)
            current.commit_time = dt.datetime.fromtimestamp(event.timestamp, tz=dt.UTC)
            transactions.append(current)
        return at

    def _refuse_truncate(self, query: str, event, at: str) -> None:
        match = _TRUNCATE.match(query)
        if match is None:
            return
        schema = match["schema"] or (event.schema.decode() if isinstance(event.schema, bytes) else event.schema)
        if schema == self.schema and match["table"] in self.table_names:
            raise CdcApplyError(ERR_TRUNCATE.format(table=f"{schema}.{match['table']}", position=at))

    def _refuse_statement(self, query: str, at: str) -> None:
        """A data change logged as its statement (a session's binlog_format STATEMENT or MIXED) naming a captured
        table; others' statements pass (the table names are matched as words, quoted or not)."""
        for table in self.table_names:
            if re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", query, re.IGNORECASE):
                raise BinlogError(ERR_STATEMENT.format(plan=self.plan, table=f"{self.schema}.{table}", position=at))

    def _changes(self, event, current: Transaction, at: str) -> None:
        relation = self._relation(event)
        for row in event.rows:
            if isinstance(event, WriteRowsEvent):
                current.changes.append(
                    Insert(relation.oid, self._values(relation, row["values"], row.get("none_sources", {}), at))
                )
            elif isinstance(event, DeleteRowsEvent):
                old = self._values(relation, row["values"], row.get("none_sources", {}), at)
                current.changes.append(Delete(relation.oid, old, "O"))
            else:
                old = self._values(relation, row["before_values"], row.get("before_none_sources", {}), at)
                new = self._values(relation, row["after_values"], row.get("after_none_sources", {}), at)
                current.changes.append(Update(relation.oid, old, "O", new))


def _label(relation: RelationMessage) -> str:
    return f"{relation.schema}.{relation.table}"


class BinlogCapture:
    """What the worker, the streams and validation ask of a MySQL/MariaDB source (slots.PgCapture's twin)."""

    kind = "binlog"

    def __init__(self, *, url: str, stream: CdcStream, reader: str = "worker") -> None:
        self.url, self.stream = url, stream
        self.connection = source_connect(url)
        self.reader = BinlogReader(
            url=url,
            tables=list(stream.tables),
            server_id=replica_server_id(stream_id=stream.pk, reader=reader),
            plan=stream.plan.name,
        )
        self.relations = self.reader.relations

    # positions ---------------------------------------------------------------------------------
    def position_int(self, text: str) -> int:
        return position_int(text) if text else 0

    def position_text(self, value: int) -> str:
        """A position number back to ``file:position``, with the stream's file name pattern."""
        match = _POSITION.match(self.stream.start_lsn)
        width = len(match["index"])
        return position_text(f"{match['file']}{value >> 32:0{width}d}", value & 0xFFFFFFFF)

    # the loop's calls ----------------------------------------------------------------------------
    def gone_message(self, *, plan: str) -> str:
        confirmed = self.stream.confirmed_lsn
        return ERR_PURGED.format(plan=plan, file=position_parse(confirmed)[0], position=confirmed)

    def state(self, *, confirmed: str | None = None) -> dict[str, Any] | None:
        """Lag in bytes after the confirmed position (the row's, unless given); None if its binlog is purged."""
        if confirmed is None:
            confirmed = CdcStream.objects.filter(pk=self.stream.pk).values_list("confirmed_lsn", flat=True).first()
            confirmed = confirmed or self.stream.confirmed_lsn
        behind = lag_bytes(binary_logs(self.connection), confirmed)
        if behind is None:
            return None
        return {"confirmed_lsn": position_int(confirmed), "lag_bytes": behind, "active": False}

    def end_position(self) -> int:
        return position_int(master_position(self.connection, url=self.url))

    def read(self, *, confirmed: int, upto: int, limit: int) -> Batch:
        """The transactions after ``confirmed`` (the reader goes to the server's end, which is past ``upto``)."""
        problems = server_problems(self.connection)
        if problems:
            raise BinlogError(ERR_SERVER.format(host=_url_settings(self.url)["host"], problems="; ".join(problems)))
        read = self.reader.read(
            start=self.position_text(confirmed), limit=limit, seconds=settings.LIZZY_CDC_LEASE_SECONDS / 3
        )
        return Batch(read.transactions, read.complete, position_int(read.end) if read.end else 0)

    def changed_identities(self, context: PlanContext, *, start: int, end: int) -> set[str] | None:
        """The source rows (apply.py's identities: entity and encoded source key, old and new) that a change
        committed between ``start`` and ``end`` touched; None when that cannot be said (not read that far,
        a TRUNCATE, an error). Validation's stand-in for a row version: a row absent from it did not change."""
        try:
            read = self.reader.read(
                start=self.position_text(start), limit=2**62, seconds=settings.LIZZY_VALIDATION_SETTLE_SECONDS
            )
            if not read.end or position_int(read.end) < end:
                return None
            planned = self.applier(context).operations(read.transactions, self.relations)
        except (ApplicationError, pymysql.MySQLError):
            return None
        refs = [operation.source for operation in planned.operations if operation.source is not None]
        refs += [bad.change for bad in planned.bad]
        return {identity for ref in refs for identity in (ref.owner, ref.previous)}

    def advance(self, *, position: int) -> None:
        """Nothing to move on the source: the position is confirmed in the stream's row (the worker does)."""

    def applier(self, context: PlanContext) -> ChangeApplier:
        declared: dict[tuple[str, str], dict[str, str]] = {}

        def type_names(relation: RelationMessage) -> list[str]:
            slot = (relation.schema, relation.table)
            if slot not in declared:
                declared[slot] = context.source.column_types(schema=relation.schema, table=relation.table, query=None)
            return [declared[slot].get(column.name, "") for column in relation.columns]

        return ChangeApplier(context=context, type_names=type_names, rows=context.source.rows_from_binlog)

    def close(self) -> None:
        with contextlib.suppress(pymysql.MySQLError):
            self.connection.close()


def replica_server_id(*, stream_id: int, reader: str) -> int:
    """The replica id a reader registers with: ``LIZZY_CDC_BINLOG_SERVER_ID_BASE`` + 2 × the stream's id, + 1 for
    validation's reads (a second reader with the worker's id would make the server drop the worker's)."""
    return settings.LIZZY_CDC_BINLOG_SERVER_ID_BASE + 2 * stream_id + (1 if reader == "validation" else 0)


def stream_start(*, url: str) -> str:
    """Check the server can be captured; its binlog end, from which the stream captures every commit."""
    connection = source_connect(url)
    try:
        server_check(connection, url=url)
        return master_position(connection, url=url)
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            connection.close()
