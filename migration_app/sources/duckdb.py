"""DuckDB files (``duckdb:///FILE``), opened read-only, with no way out of the file.

A DuckDB query can read any file or URL (``read_text('/proc/self/environ')``, ``read_csv``, an http URL,
which also auto-installs the httpfs extension from the network). The connection is opened with external
access off (no file, network, ``ATTACH``, ``COPY`` or replacement scans of Python variables), extension
auto-install and auto-load off, and the configuration locked so a query cannot turn them back on. A query
is one statement (counted by DuckDB's own parser); one that runs past ``LIZZY_SOURCE_STATEMENT_TIMEOUT`` is
interrupted.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import duckdb

from lizzy.exact_json import exact_json
from migration_app.sources.base import (
    ERR_ONE_STATEMENT,
    ERR_SOURCE,
    ERR_TIMEOUT,
    ROWID,
    Relation,
    SourceError,
    SqlSource,
)

# Read through SQL, not the driver: DuckDB hands TIMESTAMPTZ to Python only with pytz installed (and then in
# the session's zone), and turns an INTERVAL of months into a timedelta of 30-day months.
_UTC_CAST = re.compile(r"^(TIMESTAMP WITH TIME ZONE|TIMESTAMPTZ)$", re.IGNORECASE)
_TEXT_CAST = re.compile(r"^INTERVAL$", re.IGNORECASE)

CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,  # last: after it, nothing above can be changed by SET
}


class DuckdbSource(SqlSource):
    scheme = "duckdb"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("duckdb:///", 1)[1]
        try:
            self.connection = duckdb.connect(path, read_only=True, config=dict(CONFIG))
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

    def column_types(self, *, schema: str, table: str | None, query: str | None) -> dict[str, str]:
        key = (schema, table, query)
        if key not in self._declared and query:
            cursor = self._execute(f"SELECT * FROM ({query}) AS src LIMIT 0", [])  # noqa: S608
            self._declared[key] = {column[0]: str(column[1]) for column in cursor.description}
            cursor.close()
        return super().column_types(schema=schema, table=table, query=query)

    def _select(self, relation: Relation) -> str:
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        declared = self.column_types(schema=relation.schema, table=relation.table, query=relation.query)
        parts = []
        for name, type_name in declared.items():
            column = self.quote(name)
            if _UTC_CAST.match(type_name):
                parts.append(f"timezone('UTC', {column}) AS {column}")
            elif _TEXT_CAST.match(type_name):
                parts.append(f"CAST({column} AS VARCHAR) AS {column}")
            else:
                parts.append(column)
        columns = ", ".join(parts) or "*"
        if relation.key == (ROWID,):
            return f"SELECT rowid AS {ROWID}, {columns} FROM {source}"  # noqa: S608
        return f"SELECT {columns} FROM {source}"  # noqa: S608

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)  # timestamps are read as UTC (see _select)

    def _key_bound(self, relation, values, operator):
        # DuckDB 2.0 folds ``a >= x AND (a, b) > (...) AND ... <= (...)`` into a BETWEEN on row values and
        # then refuses the tuple type, so composite bounds are spelled out: (a > x) OR (a = x AND b > y) ...
        if len(relation.key) == 1:
            return super()._key_bound(relation, values, operator)
        strict = ">" if operator == ">" else "<"
        clauses, params = [], []
        columns = [self.quote(column) for column in relation.key]
        for position, column in enumerate(columns):
            equal = [f"{c} = ?" for c in columns[:position]]
            last = f"{column} {strict} ?" if position < len(columns) - 1 or operator == ">" else f"{column} <= ?"
            clauses.append("(" + " AND ".join([*equal, last]) + ")")
            params += [*values[:position], values[position]]
        return "(" + " OR ".join(clauses) + ")", params

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        out = {}
        for name, value in row.items():
            type_name = declared.get(name, "")
            if isinstance(value, str) and type_name.upper() == "JSON":
                value = exact_json(value)
            elif isinstance(value, dt.datetime) and value.tzinfo is None and _UTC_CAST.match(type_name):
                value = value.replace(tzinfo=dt.UTC)
            out[name] = value
        return out

    def _execute(self, sql: str, params: list[Any]) -> Any:
        cursor = self.connection.cursor()
        timer = threading.Timer(self.statement_timeout, cursor.interrupt)
        try:
            statements = cursor.extract_statements(sql)
            if len(statements) != 1:
                raise SourceError(ERR_SOURCE.format(problem=ERR_ONE_STATEMENT.format(count=len(statements))))
            timer.start()
            return cursor.execute(sql, params)  # DuckDB runs the whole query here; fetching reads its result
        except duckdb.Error as exc:
            interrupted = isinstance(exc, duckdb.InterruptException)
            problem = ERR_TIMEOUT.format(seconds=self.statement_timeout) if interrupted else exc
            raise SourceError(ERR_SOURCE.format(problem=problem)) from exc
        finally:
            timer.cancel()

    def close(self) -> None:
        self.connection.close()
