"""PostgreSQL (``postgres://``) with psycopg 3; pages are read through a server-side (named) cursor.

Declared types come from ``pg_catalog`` (``format_type``: ``numeric(38,0)``, ``integer[]``; enums and
domains resolved to what they are), for tables and for the columns of a ``source-query`` alike. Types whose
driver value is not exact are cast in the query: ``interval`` and ranges to their text, ``money`` to
numeric, network types to text. JSON numbers are read as Decimals (never floats).

The connection is read-only twice over: ``default_transaction_read_only`` for the session and psycopg's
``read_only`` (every transaction opens with ``BEGIN READ ONLY``, so a query that turns the session default
off with ``set_config`` still cannot write); and every transaction ends with ROLLBACK, never COMMIT, since
PostgreSQL lets the large-object functions (``lo_create``, ``lo_import``) write inside a read-only one.
``connect_timeout`` and ``statement_timeout`` come from settings. ``snapshot()`` holds one ``REPEATABLE READ``
transaction open across queries (a validation part, a settle round: one consistent view, rolled back at the end);
``rows_by_keys`` reads rows with their ``xmin``, which any committed change to a row replaces.
Every query goes through the extended protocol (a server-side cursor, or ``prepare=True``), which refuses
more than one statement: ``SELECT 1; CREATE TABLE x()`` is an error, not a table.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format
from psycopg.types.json import set_json_loads

from lizzy.exact_json import exact_json
from migration_app.services.types import Unreadable
from migration_app.sources.base import (
    ERR_PRIVILEGED_ROLE,
    ERR_SOURCE,
    ERR_TIMEOUT,
    KEY,
    RECONNECT_ATTEMPTS,
    ROWID,
    VERSION,
    Relation,
    SourceError,
    SqlSource,
    encode_key,
    privileged_role_allowed,
)

logger = logging.getLogger(__name__)

_TEXT_CAST = re.compile(r"^(interval|inet|cidr|macaddr8?|\w*range|\w*multirange|user-defined-enum)\b", re.IGNORECASE)
_NUMERIC_CAST = re.compile(r"^money\b", re.IGNORECASE)
_PROBED = re.compile(r"^(numeric|decimal|double precision|real)\b", re.IGNORECASE)

_TYPES_SQL = (
    "SELECT a.attname AS name, "
    "CASE WHEN t.typtype = 'e' THEN 'user-defined-enum' "
    "     WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) "
    "     WHEN et.typtype = 'e' THEN 'user-defined-enum[]' "
    "     ELSE format_type(a.atttypid, a.atttypmod) END AS type "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem "
    "WHERE a.attrelid = (%s)::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


# What makes a role reach outside its database: superuser, or the built-in roles that read or write the server's
# files or run programs there (pg_read_file, COPY ... FROM PROGRAM, lo_import). MEMBER, not USAGE: a member
# without INHERIT can still SET ROLE.
PRIVILEGED_ROLE_SQL = """
SELECT current_user AS role, r.rolsuper AS superuser,
       array_remove(ARRAY[
         CASE WHEN pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') THEN 'pg_read_server_files' END,
         CASE WHEN pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') THEN 'pg_write_server_files' END,
         CASE WHEN pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')
              THEN 'pg_execute_server_program' END
       ], NULL) AS roles
  FROM pg_roles r WHERE r.rolname = current_user
"""


def _loads(data: bytes | str) -> Any:
    return exact_json(data)


# Python's datetime holds years 1 to 9999; PostgreSQL also has 'infinity', BC and years past 9999, which the
# driver refuses with an error that would stop the whole source. Such a value of a non-key column is read as
# NULL plus its text in a companion column, and handed over as Unreadable: that row is refused, not the run.
# (Done in SQL: psycopg's C date/time loaders cannot be subclassed, and Python ones are five times slower.)
# A key column keeps its value (keyset paging orders and seeks by it), so the date/time loaders are wrapped:
# a value the C loader refuses comes back as Unreadable, whose text is what the next page's seek binds (the
# server reads 'infinity' back as the same timestamp); its companion column names the column for the row error.
_TIME_BOUNDED = re.compile(r"^(timestamp|date)\b(?!.*\[\])", re.IGNORECASE)
_IN_RANGE = "{c} >= '0001-01-01' AND {c} < '10000-01-01'"
UNREADABLE_PREFIX = "__unreadable_"
ERR_TIME_RANGE = "{text!r} has no DynamoDB form (years 1 to 9999 only)"
_TIME_TYPES = ("timestamptz", "timestamp", "date")


def _out_of_range_tolerant(base: type[Loader], declared: str) -> type[Loader]:
    """``base`` (psycopg's C loader), except that a value it refuses is Unreadable instead of an error."""

    class OutOfRangeTolerant(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = base(oid, context).load

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except psycopg.DataError:
                text = bytes(data).decode()
                return Unreadable(column="", declared=declared, raw=text, problem=ERR_TIME_RANGE.format(text=text))

    return OutOfRangeTolerant


def _register_time_loaders(connection: psycopg.Connection) -> None:
    for name in _TIME_TYPES:
        oid = connection.adapters.types[name].oid
        base = connection.adapters.get_loader(oid, Format.TEXT)
        connection.adapters.register_loader(oid, _out_of_range_tolerant(base, name))


class PostgresSource(SqlSource):
    placeholder = "%s"
    rowid_expression = "ctid"
    scheme = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__(url.replace("postgres://", "postgresql://", 1))
        self._snapshot = ""  # "" | "pending" (REPEATABLE READ set, no query yet) | "taken"
        self.connection = self._connect()
        self._cursor_number = 0

    def _connect(self) -> Any:
        try:
            params = conninfo_to_dict(self.url)
            params.setdefault("connect_timeout", max(1, math.ceil(self.connect_timeout)))
            session = (
                "-c default_transaction_read_only=on "
                f"-c statement_timeout={max(1, round(self.statement_timeout * 1000))}"
            )
            params["options"] = f"{params.get('options', '')} {session}".strip()
            connection = psycopg.connect(autocommit=False, **params)
            connection.read_only = True  # BEGIN READ ONLY, whatever the session default says
            if not privileged_role_allowed():
                self._refuse_privileged_role(connection)
        except psycopg.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=type(exc).__name__)) from exc
        set_json_loads(_loads, connection)
        _register_time_loaders(connection)
        return connection

    @staticmethod
    def _refuse_privileged_role(connection: Any) -> None:
        """A read-only transaction does not stop a superuser's ``pg_read_file``: such a role is refused here."""
        with connection.cursor() as cursor:
            role, superuser, roles = cursor.execute(PRIVILEGED_ROLE_SQL).fetchone()
        connection.rollback()
        if superuser or roles:
            connection.close()
            why = "is a superuser" if superuser else "is a member of " + ", ".join(roles)
            raise SourceError(ERR_SOURCE.format(problem=ERR_PRIVILEGED_ROLE.format(role=role, why=why)))

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        for name in [name for name in row if name.startswith(UNREADABLE_PREFIX)]:
            text = row.pop(name)
            if text is not None:
                column = name.removeprefix(UNREADABLE_PREFIX)
                problem = ERR_TIME_RANGE.format(text=text)
                row[column] = Unreadable(column=column, declared=declared.get(column, ""), raw=text, problem=problem)
        return row

    def _problem(self, exc: psycopg.Error) -> str:
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return ERR_TIMEOUT.format(seconds=self.statement_timeout)
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def tables(self) -> list[tuple[str, str]]:
        rows = self._fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
            [],
        )
        return [(row["table_schema"], row["table_name"]) for row in rows]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        rows = self._fetch(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = (%s)::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            [f"{self.quote(schema)}.{self.quote(table)}"],
        )
        return [row["attname"] for row in rows]

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        rows = self._fetch(_TYPES_SQL, [f"{self.quote(schema)}.{self.quote(table)}"])
        return {row["name"]: row["type"] for row in rows}

    def column_types(self, *, schema: str, table: str | None, query: str | None) -> dict[str, str]:
        key = (schema, table, query)
        if key not in self._declared and query:
            cursor = self._execute(f"SELECT * FROM ({query}) AS src LIMIT 0", [])  # noqa: S608
            described = [(column.name, column.type_code) for column in cursor.description]
            cursor.close()
            names = {
                row["oid"]: row["type"]
                for row in self._fetch(
                    "SELECT oid, CASE WHEN typtype = 'e' THEN 'user-defined-enum' "
                    "ELSE format_type(oid, NULL) END AS type FROM pg_type WHERE oid = ANY(%s)",
                    [[oid for _name, oid in described]],
                )
            }
            self._declared[key] = {name: names.get(oid, "") for name, oid in described}
        return super().column_types(schema=schema, table=table, query=query)

    def _columns_sql(self, relation: Relation) -> str:
        declared = self.column_types(schema=relation.schema, table=relation.table, query=relation.query)
        if not declared:
            return "*"
        parts = []
        for name, type_name in declared.items():
            column = self.quote(name)
            array = type_name.endswith("[]")
            if _TEXT_CAST.search(type_name):
                # concat() uses the type's own output (inet '192.168.0.1', not text(inet)'s '.../32')
                text = (
                    f"{column}::text[]" if array else f"CASE WHEN {column} IS NULL THEN NULL ELSE concat({column}) END"
                )
                parts.append(f"{text} AS {column}")
            elif _NUMERIC_CAST.search(type_name):
                parts.append(f"{column}::{'numeric[]' if array else 'numeric'} AS {column}")
            elif _TIME_BOUNDED.search(type_name):
                in_range = _IN_RANGE.format(c=column)
                # a key keeps its value, read by the tolerant loaders (_register_time_loaders)
                parts.append(
                    f"{column}" if name in relation.key else f"CASE WHEN {in_range} THEN {column} END AS {column}"
                )
                companion = self.quote(UNREADABLE_PREFIX + name)
                parts.append(f"CASE WHEN NOT ({in_range}) THEN {column}::text END AS {companion}")
            else:
                parts.append(column)
        return ", ".join(parts)

    def _select(self, relation: Relation) -> str:
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        columns = self._columns_sql(relation)
        if relation.key == (ROWID,):
            return f"SELECT ctid AS {ROWID}, {columns} FROM {source}"  # noqa: S608
        return f"SELECT {columns} FROM {source}"  # noqa: S608

    def as_text(self, column: str) -> str:
        return f"{column}::text"

    def rows_from_text(
        self, relation: Relation, *, columns: list[tuple[str, str]], tuples: list[list[str | None]]
    ) -> list[tuple[dict[str, Any], bool]]:
        """Rows given in the server's text output (logical decoding) → rows exactly as ``pages`` reads them.

        The values go back through the server: ``VALUES ($1::numeric(38,0), ...)`` with the relation's
        select list (its casts) and filters, so the driver types them as it types a backfill page. Each
        row comes with whether it passes the relation's DMS filters. ``columns`` are (name, SQL type).
        """
        if not tuples:
            return []
        names = [name for name, _type in columns]
        per_row = "(" + ", ".join(f"%s::{type_name}" for _name, type_name in columns) + ", %s::int)"
        clauses, filter_params = self._filters_sql(relation)
        match = " AND ".join(clauses) if clauses else "TRUE"
        quoted = ", ".join([*(self.quote(name) for name in names), "__lizzy_ord"])
        inner = f"SELECT {self._columns_sql(relation)}, __lizzy_ord FROM (VALUES {{values}}) AS src({quoted})"  # noqa: S608
        limit = max(1, 30000 // (len(columns) + 1))  # PostgreSQL binds at most 65,535 parameters per query
        out: list[tuple[dict[str, Any], bool]] = []
        for start in range(0, len(tuples), limit):
            chunk = tuples[start : start + limit]
            values = ", ".join(per_row for _ in chunk)
            params: list[Any] = list(filter_params)
            for position, values_of_row in enumerate(chunk):
                params += [*values_of_row, position]
            sql = f"SELECT *, ({match}) AS __lizzy_match FROM ({inner.format(values=values)}) AS page"  # noqa: S608
            rows = sorted(self._fetch(sql, params), key=lambda row: row["__lizzy_ord"])
            for row in rows:
                matched = bool(row.pop("__lizzy_match"))
                row.pop("__lizzy_ord")
                out.append((row, matched))
        declared = {
            **self.column_types(schema=relation.schema, table=relation.table, query=relation.query),
            **dict(relation.types),
        }
        converted = []
        for row, matched in out:
            result = self._convert(row, declared)
            result[KEY] = encode_key([row[column] for column in relation.key])
            converted.append((result, matched))
        return converted

    def unexact_condition(self, column: str, declared: str) -> str | None:
        """More than 38 significant digits, NaN/Infinity, or out of DynamoDB's range."""
        if not _PROBED.search(declared) or declared.endswith("[]"):
            return None
        return (
            f"{column}::text IN ('NaN', 'Infinity', '-Infinity') OR abs({column}) >= 1e126 "
            f"OR ({column} <> 0 AND abs({column}) < 1e-130) "
            f"OR length(trim(both '0' from translate(abs({column})::text, '.-', ''))) > 38"
        )

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[bool]:
        """Every query until the end of the block in one ``REPEATABLE READ READ ONLY`` transaction: one
        snapshot, taken by the first query (rolled back at the end, as every transaction here)."""
        self._rollback()
        if self.connection.closed or self.connection.broken:
            self._reconnect(psycopg.OperationalError("connection lost before a snapshot"))
        self.connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self._snapshot = "pending"
        try:
            yield True
        finally:
            self._snapshot = ""
            self._rollback()
            with contextlib.suppress(psycopg.Error):
                self.connection.isolation_level = None

    @property
    def _snapshot_open(self) -> bool:
        return self._snapshot != ""

    def _may_reconnect(self) -> bool:
        """Not once a snapshot has been taken: a new connection would read another one, silently."""
        return self._snapshot != "taken"

    def _versioned_select(self, relation: Relation) -> str:
        if not relation.table:
            return super()._versioned_select(relation)
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        # xmin: the transaction that wrote this row version; any committed UPDATE makes a new one
        return f"SELECT xmin::text AS {VERSION}, {self._columns_sql(relation)} FROM {source}"  # noqa: S608

    def _fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        for attempt in range(RECONNECT_ATTEMPTS + 1):
            self._cursor_number += 1
            try:
                with self.connection.cursor(name=f"lizzy_page_{self._cursor_number}") as cursor:
                    cursor.itersize = 500
                    cursor.execute(sql, params)
                    names = [column.name for column in cursor.description]
                    rows = [dict(zip(names, values, strict=True)) for values in cursor]
                # Rolled back, never committed: a read has nothing to commit, and PostgreSQL lets some
                # functions write inside a READ ONLY transaction (lo_create, lo_import, lo_from_bytea).
                # Inside a snapshot the transaction stays open until the snapshot ends (rolled back then).
                if self._snapshot_open:
                    self._snapshot = "taken"
                else:
                    self.connection.rollback()
                return rows
            except psycopg.Error as exc:
                if self._lost(exc) and attempt < RECONNECT_ATTEMPTS and self._may_reconnect():
                    self._reconnect(exc)
                    continue
                self._rollback()
                raise SourceError(ERR_SOURCE.format(problem=self._problem(exc))) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute(self, sql: str, params: list[Any]) -> Any:
        for attempt in range(RECONNECT_ATTEMPTS + 1):
            try:
                cursor = self.connection.cursor()
                cursor.execute(sql, params, prepare=True)  # the extended protocol: one statement only
                if self._snapshot_open:
                    self._snapshot = "taken"
                return cursor
            except psycopg.Error as exc:
                if self._lost(exc) and attempt < RECONNECT_ATTEMPTS and self._may_reconnect():
                    self._reconnect(exc)
                    continue
                self._rollback()
                raise SourceError(ERR_SOURCE.format(problem=self._problem(exc))) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # A dropped connection (failover, pg_terminate_backend, an idle timeout) is not a broken source: every
    # query is a keyset page that starts after the last checkpointed key, so it is safe to reconnect and
    # ask again. Anything else (a syntax error, a missing table) is reported as it is. Once a snapshot has been
    # taken a new connection would read another one: the error is reported instead (the validation fails, naming
    # it), never two snapshots mixed in one part.
    def _lost(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.OperationalError) and (self.connection.broken or self.connection.closed)

    def _reconnect(self, exc: Exception) -> None:
        logger.warning("source connection lost (%s); reconnecting", type(exc).__name__)
        with contextlib.suppress(psycopg.Error):
            self.connection.close()
        self.connection = self._connect()
        if self._snapshot == "pending":  # no query read the snapshot yet: the new connection takes it instead
            self.connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

    def _rollback(self) -> None:
        """Roll back the failed statement; on a connection that is gone there is nothing to roll back."""
        with contextlib.suppress(psycopg.Error):
            self.connection.rollback()

    def close(self) -> None:
        self.connection.close()
