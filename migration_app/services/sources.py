"""Source databases by URL: PostgreSQL (psycopg), SQLite (sqlite3), DuckDB files (duckdb).

Rows are read in key order with keyset pagination (``WHERE key > last ORDER BY key LIMIT n``), one page
at a time, so memory stays flat however large the table and a checkpoint is just the last key. Tables
without a primary key page by the engine's row id (``rowid`` in SQLite and DuckDB, ``ctid`` in
PostgreSQL), which is stable while the source is not being rewritten.

Types come out as Python values the codec stores exactly: PostgreSQL's adapters already give Decimal,
aware datetimes, UUID, dict/list for JSON, lists for arrays and bytes for bytea. SQLite only knows five
storage classes, so declared column types (BOOLEAN, JSON, TIMESTAMP, DECIMAL...) say how to read them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from lizzy.errors import ApplicationError

logger = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 3  # per query: a source that keeps dropping us is reported, not retried forever
ERR_SCHEME = "Unsupported source URL scheme {scheme!r}: use postgres://, sqlite:///FILE or duckdb:///FILE."
ERR_SOURCE = "Cannot read the source database: {problem}"
ROWID = "__rowid"


class SourceError(ApplicationError):
    code = "source_error"


@dataclass(frozen=True)
class Relation:
    """What an entity reads: a table or a query, its paging key and its optional change column."""

    schema: str
    table: str | None
    query: str | None
    key: tuple[str, ...]
    changed_at_column: str | None = None
    types: tuple[tuple[str, str], ...] = ()  # declared types a query cannot report (the mapping's column-types)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _after(columns: tuple[str, ...], placeholder: str) -> str:
    """``(k1, k2) > (v1, v2)`` spelled out, because not every engine compares row values."""
    clauses = []
    for position, column in enumerate(columns):
        equal = [f"{_quote(c)} = {placeholder}" for c in columns[:position]]
        clauses.append("(" + " AND ".join([*equal, f"{_quote(column)} > {placeholder}"]) + ")")
    return "(" + " OR ".join(clauses) + ")"


def _after_params(values: list[Any]) -> list[Any]:
    params: list[Any] = []
    for position in range(len(values)):
        params.extend(values[:position])
        params.append(values[position])
    return params


class SqlSource:
    """Keyset paging over any DB-API connection; subclasses say how to connect and describe tables."""

    placeholder = "?"
    ignores_schema = False
    rowid_expression = "rowid"

    def __init__(self, url: str) -> None:
        self.url = url
        self._declared: dict[tuple[str, str | None, str | None], dict[str, str]] = {}

    # -- description ------------------------------------------------------------------------------
    def tables(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        raise NotImplementedError

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        return {}

    def _relation_sql(self, schema: str, table: str | None, query: str | None) -> str:
        if query:
            return f"({query}) AS src"
        return f"{_quote(schema)}.{_quote(table)}" if schema and not self.ignores_schema else _quote(table)

    def columns(self, *, schema: str, table: str | None, query: str | None) -> list[str]:
        cursor = self._execute(f"SELECT * FROM {self._relation_sql(schema, table, query)} LIMIT 0", [])  # noqa: S608
        names = [column[0] for column in cursor.description]
        cursor.close()
        return names

    def column_types(self, *, schema: str, table: str | None, query: str | None) -> dict[str, str]:
        key = (schema, table, query)
        if key not in self._declared:
            self._declared[key] = self._declared_types(schema=schema, table=table) if table else {}
        return self._declared[key]

    def relation(self, entity: Any) -> Relation:
        key = tuple(entity.source_key) or (ROWID,)
        types = tuple(sorted(entity.column_types.items()))
        return Relation(entity.schema, entity.table, entity.query, key, entity.changed_at_column, types)

    # -- reading --------------------------------------------------------------------------------
    def _select(self, relation: Relation) -> str:
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        if relation.key == (ROWID,):
            return f"SELECT * FROM (SELECT {self.rowid_expression} AS {ROWID}, * FROM {source}) AS keyed"  # noqa: S608
        return f"SELECT * FROM {source}"  # noqa: S608

    def _where(
        self, relation: Relation, *, lower: list[Any] | None, upper: list[Any] | None, since: dt.datetime | None
    ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if lower is not None:
            clauses.append(_after(relation.key, self.placeholder))
            params += _after_params(lower)
        if upper is not None:
            clauses.append("NOT " + _after(relation.key, self.placeholder))
            params += _after_params(upper)
        if since is not None and relation.changed_at_column:
            clauses.append(f"{_quote(relation.changed_at_column)} > {self.placeholder}")
            params.append(self._time_param(since))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment

    def _order(self, relation: Relation) -> str:
        return " ORDER BY " + ", ".join(_quote(column) for column in relation.key)

    def count(
        self,
        relation: Relation,
        *,
        since: dt.datetime | None = None,
        lower: list[Any] | None = None,
        upper: list[Any] | None = None,
    ) -> int:
        """Rows of the relation (changed after ``since``), optionally within one segment's key range."""
        where, params = self._where(relation, lower=lower, upper=upper, since=since)
        cursor = self._execute(f"SELECT COUNT(*) FROM ({self._select(relation)}) AS counted{where}", params)  # noqa: S608
        (total,) = cursor.fetchone()
        cursor.close()
        return int(total)

    def boundaries(self, relation: Relation, *, segments: int, since: dt.datetime | None = None) -> list[list[Any]]:
        """Keys that cut the relation into ``segments`` slices of about equal row counts."""
        total = self.count(relation, since=since)
        if segments <= 1 or total < segments:
            return []
        where, params = self._where(relation, lower=None, upper=None, since=since)
        cuts = []
        for position in range(1, segments):
            offset = total * position // segments - 1
            sql = (
                f"SELECT {', '.join(_quote(c) for c in relation.key)} FROM ({self._select(relation)}) AS cut"  # noqa: S608
                f"{where}{self._order(relation)} LIMIT 1 OFFSET {int(offset)}"
            )
            cursor = self._execute(sql, params)
            row = cursor.fetchone()
            cursor.close()
            if row is not None and (not cuts or list(row) != cuts[-1]):
                cuts.append([self._key_json(value) for value in row])
        return cuts

    def _key_json(self, value: Any) -> Any:
        """A key as it is stored in a checkpoint (JSON): exact, and accepted back as a parameter."""
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.hex()
        return value if isinstance(value, (int, float, str)) or value is None else str(value)

    def pages(
        self,
        relation: Relation,
        *,
        after: list[Any] | None,
        upper: list[Any] | None,
        page_size: int,
        since: dt.datetime | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows in key order, starting after ``after`` (a checkpoint) up to ``upper`` included."""
        declared = {
            **self.column_types(schema=relation.schema, table=relation.table, query=relation.query),
            **dict(relation.types),
        }
        while True:
            where, params = self._where(relation, lower=after, upper=upper, since=since)
            sql = (
                f"SELECT * FROM ({self._select(relation)}) AS page{where}{self._order(relation)} LIMIT {int(page_size)}"  # noqa: S608
            )
            rows = self._fetch(sql, params)
            if not rows:
                return
            converted = [self._convert(row, declared) for row in rows]
            yield converted
            after = [self._key_json(converted_row_key) for converted_row_key in self._raw_key(rows[-1], relation)]
            if len(rows) < page_size:
                return

    def _raw_key(self, row: dict[str, Any], relation: Relation) -> list[Any]:
        return [row[column] for column in relation.key]

    def key_of(self, row: dict[str, Any], relation: Relation) -> list[Any]:
        return [self._key_json(row[column]) for column in relation.key]

    def _fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        cursor.close()
        return rows

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        return row

    def _execute(self, sql: str, params: list[Any]) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> SqlSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_declared(value: Any, declared: str) -> Any:
    """SQLite and DuckDB JSON columns come back as text; SQLite also flattens booleans, times, decimals."""
    if value is None:
        return None
    upper = declared.upper()
    if "JSON" in upper and isinstance(value, str):
        return json.loads(value)
    if "BOOL" in upper and isinstance(value, int):
        return bool(value)
    if ("TIMESTAMP" in upper or "DATETIME" in upper) and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if re.search(r"DECIMAL|NUMERIC", upper) and isinstance(value, (str, float)):
        return Decimal(value) if isinstance(value, str) else Decimal(repr(value))
    return value


class SqliteSource(SqlSource):
    ignores_schema = True  # one database per file; a DMS schema-name matches it whatever it says

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else urlparse(url).path
        try:
            self.connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=f"{path}: {exc}")) from exc

    def tables(self) -> list[tuple[str, str]]:
        rows = self._fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", [])
        return [("main", row["name"]) for row in rows]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        rows = self._fetch(f"PRAGMA table_info({_quote(table)})", [])
        keyed = sorted((row["pk"], row["name"]) for row in rows if row["pk"])
        return [name for _position, name in keyed]

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        return {row["name"]: row["type"] or "" for row in self._fetch(f"PRAGMA table_info({_quote(table)})", [])}

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment.astimezone(dt.UTC).isoformat()

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        return {name: _read_declared(value, declared.get(name, "")) for name, value in row.items()}

    def _execute(self, sql: str, params: list[Any]) -> Any:
        try:
            return self.connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=exc)) from exc

    def close(self) -> None:
        self.connection.close()


class DuckdbSource(SqlSource):
    def __init__(self, url: str) -> None:
        import duckdb

        super().__init__(url)
        self._duckdb = duckdb
        path = url.split("duckdb:///", 1)[1]
        try:
            self.connection = duckdb.connect(path, read_only=True)
        except duckdb.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=f"{path}: {exc}")) from exc

    def tables(self) -> list[tuple[str, str]]:
        rows = self._fetch("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2", [])
        return [(row["schema_name"], row["table_name"]) for row in rows]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        rows = self._fetch(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [schema, table],
        )
        return list(rows[0]["constraint_column_names"]) if rows else []

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        rows = self._fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
        return {row["column_name"]: row["data_type"] for row in rows}

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        return {
            name: _read_declared(value, declared.get(name, "")) if "JSON" in declared.get(name, "").upper() else value
            for name, value in row.items()
        }

    def _execute(self, sql: str, params: list[Any]) -> Any:
        try:
            return self.connection.cursor().execute(sql, params)
        except self._duckdb.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=exc)) from exc

    def close(self) -> None:
        self.connection.close()


class PostgresSource(SqlSource):
    """psycopg 3; pages are read through a server-side (named) cursor in ``itersize`` batches."""

    placeholder = "%s"
    rowid_expression = "ctid"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(url)
        self._psycopg = psycopg
        try:
            self.connection = psycopg.connect(url, autocommit=False)
        except psycopg.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=type(exc).__name__)) from exc
        self._cursor_number = 0

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
            [f"{_quote(schema)}.{_quote(table)}"],
        )
        return [row["attname"] for row in rows]

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        rows = self._fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, table],
        )
        return {row["column_name"]: row["data_type"] for row in rows}

    def _key_json(self, value: Any) -> Any:
        return super()._key_json(value)

    def _select(self, relation: Relation) -> str:
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        if relation.key == (ROWID,):
            return f"SELECT * FROM (SELECT ctid AS {ROWID}, * FROM {source}) AS keyed"  # noqa: S608
        return f"SELECT * FROM {source}"  # noqa: S608

    def _where(self, relation, *, lower, upper, since):
        where, params = super()._where(relation, lower=lower, upper=upper, since=since)
        if relation.key == (ROWID,):
            where = where.replace(f"{_quote(ROWID)} > %s", f"{_quote(ROWID)} > (%s)::tid")
        return where, params

    def _fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        for attempt in range(RECONNECT_ATTEMPTS + 1):
            self._cursor_number += 1
            try:
                with self.connection.cursor(name=f"lizzy_page_{self._cursor_number}") as cursor:
                    cursor.itersize = 500
                    cursor.execute(sql, params)
                    names = [column.name for column in cursor.description]
                    rows = [dict(zip(names, values, strict=True)) for values in cursor]
                self.connection.commit()
                return rows
            except self._psycopg.Error as exc:
                if self._lost(exc) and attempt < RECONNECT_ATTEMPTS:
                    self._reconnect(exc)
                    continue
                self._rollback()
                raise SourceError(ERR_SOURCE.format(problem=str(exc).strip().splitlines()[0])) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute(self, sql: str, params: list[Any]) -> Any:
        for attempt in range(RECONNECT_ATTEMPTS + 1):
            try:
                cursor = self.connection.cursor()
                cursor.execute(sql, params)
                return cursor
            except self._psycopg.Error as exc:
                if self._lost(exc) and attempt < RECONNECT_ATTEMPTS:
                    self._reconnect(exc)
                    continue
                self._rollback()
                raise SourceError(ERR_SOURCE.format(problem=str(exc).strip().splitlines()[0])) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # A dropped connection (failover, pg_terminate_backend, an idle timeout) is not a broken source: every
    # query is a keyset page that starts after the last checkpointed key, so it is safe to reconnect and
    # ask again. Anything else (a syntax error, a missing table) is reported as it is.
    def _lost(self, exc: Exception) -> bool:
        return isinstance(exc, self._psycopg.OperationalError) and (self.connection.broken or self.connection.closed)

    def _reconnect(self, exc: Exception) -> None:
        logger.warning("source connection lost (%s); reconnecting", type(exc).__name__)
        with contextlib.suppress(self._psycopg.Error):
            self.connection.close()
        try:
            self.connection = self._psycopg.connect(self.url, autocommit=False)
        except self._psycopg.Error as error:
            raise SourceError(ERR_SOURCE.format(problem=type(error).__name__)) from error

    def _rollback(self) -> None:
        """Roll back the failed statement; on a connection that is gone there is nothing to roll back."""
        with contextlib.suppress(self._psycopg.Error):
            self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


def source_open(*, url: str) -> SqlSource:
    scheme = urlparse(url).scheme
    if scheme in {"postgres", "postgresql"}:
        return PostgresSource(url.replace("postgres://", "postgresql://", 1))
    if scheme == "sqlite":
        return SqliteSource(url)
    if scheme == "duckdb":
        return DuckdbSource(url)
    raise SourceError(ERR_SCHEME.format(scheme=scheme))
