"""SQLite files (``sqlite:///FILE``), opened read-only.

Read-only three times over (``mode=ro``, ``PRAGMA query_only``, and an authorizer that allows reading
and nothing else: ``mode=ro`` alone still lets ``ATTACH`` create a file); Python's driver runs one statement
per ``execute`` and never loads extensions (``readfile()`` and friends are the CLI's, not the library's); a
statement that runs past ``LIZZY_SOURCE_STATEMENT_TIMEOUT`` is interrupted by a progress handler; a file
another process holds locked is waited for ``LIZZY_SOURCE_CONNECT_TIMEOUT`` seconds.

SQLite knows five storage classes, so declared column types (BOOLEAN, JSON, TIMESTAMP, DECIMAL...) say how
to read values; a column without a declared type keeps the value's own type.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import sqlite3
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from lizzy.exact_json import exact_json
from migration_app.services.types import Unreadable
from migration_app.sources.base import ERR_SOURCE, ERR_TIMEOUT, SourceError, SqlSource

_BOOLEAN_TEXT = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what SQLite binds as an INTEGER
PROGRESS_STEPS = 10_000  # SQLite VM instructions between two looks at the clock (microseconds apart)
ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
DESCRIBING_PRAGMAS = frozenset({"table_info", "table_xinfo"})  # what describing a table needs


def _authorize(action: int, first: str | None, second: str | None, _database: str | None, _trigger: str | None) -> int:
    """Reading only: no ATTACH, no writes, no PRAGMA that sets anything (``query_only = 0`` included)."""
    if action in ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    pragma = (first or "").lower()
    if action == sqlite3.SQLITE_PRAGMA and (
        pragma in DESCRIBING_PRAGMAS or (pragma == "query_only" and second is None)
    ):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@functools.lru_cache(maxsize=1024)
def _declared_kinds(declared: str) -> tuple[bool, bool, bool, bool]:
    """(JSON, BOOL, TIMESTAMP/DATETIME, DECIMAL/NUMERIC) for one declared type, found once, not once a value.

    A page reads every value of a column through the same declared type: testing its text (``upper``, a
    regular expression) for each value was about a third of reading a SQLite row.
    """
    upper = declared.upper()
    return (
        "JSON" in upper,
        "BOOL" in upper,
        "TIMESTAMP" in upper or "DATETIME" in upper,
        re.search(r"DECIMAL|NUMERIC", upper) is not None,
    )


def read_declared(value: Any, declared: str, column: str = "") -> Any:
    """JSON columns come back as text; SQLite also flattens booleans, times and decimals.

    SQLite stores whatever it is given, so a value the declared type cannot read (``'abc'`` in a DECIMAL
    column, ``2`` in a BOOLEAN one) comes back as :class:`Unreadable`: that row is refused, not the run.
    """
    if value is None:
        return None
    is_json, is_bool, is_time, is_decimal = _declared_kinds(declared)
    try:
        if is_json and isinstance(value, str):
            return exact_json(value)
        if is_bool and isinstance(value, int):
            if value not in (0, 1):
                return Unreadable(column=column, declared=declared, raw=value, problem=f"{value} is not 0 or 1")
            return bool(value)
        if is_bool and not isinstance(value, bool):
            text = str(value).strip().lower()
            if text in _BOOLEAN_TEXT:
                return _BOOLEAN_TEXT[text]
            return Unreadable(column=column, declared=declared, raw=value, problem=f"{value!r} is not a boolean")
        if is_time and isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        if is_decimal and isinstance(value, (str, float)):
            return Decimal(value) if isinstance(value, str) else Decimal(repr(value))
    except (ValueError, ArithmeticError):  # JSONDecodeError is a ValueError, InvalidOperation an ArithmeticError
        problem = f"{str(value)[:60]!r} is not a {declared} value"
        return Unreadable(column=column, declared=declared, raw=value, problem=problem)
    return value


class SqliteSource(SqlSource):
    ignores_schema = True  # one database per file; a DMS schema-name matches it whatever it says
    scheme = "sqlite"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else urlparse(url).path
        self._deadline = 0.0
        try:
            self.connection = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=self.connect_timeout
            )
            self.connection.execute("PRAGMA query_only = ON")
            self.connection.set_authorizer(_authorize)
            self.connection.set_progress_handler(self._past_deadline, PROGRESS_STEPS)
            # LIKE-free, case-sensitive names: PRAGMA case_sensitive_like does not matter, names are compared in Python.
        except sqlite3.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=f"{path}: {exc}")) from exc

    def tables(self) -> list[tuple[str, str]]:
        rows = self._fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", [])
        return [("main", row["name"]) for row in rows]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        rows = self._fetch(f"PRAGMA table_info({self.quote(table)})", [])
        keyed = sorted((row["pk"], row["name"]) for row in rows if row["pk"])
        return [name for _position, name in keyed]

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        return {row["name"]: row["type"] or "" for row in self._fetch(f"PRAGMA table_info({self.quote(table)})", [])}

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment.astimezone(dt.UTC).isoformat()

    def _bind_key(self, relation: Any, values: list[Any]) -> list[Any]:
        # A REAL key past SQLite's 64-bit integers (1e20) comes back from a checkpoint or unit bound in PostgreSQL's
        # jsonb as an int (jsonb keeps a number, not its spelling: 100000000000000000000), which SQLite cannot
        # bind. Such an int can only have been a REAL here, and the float of it is that REAL exactly.
        bound = super()._bind_key(relation, values)
        return [
            float(value) if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX else value for value in bound
        ]

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        # A column whose declared type reads nothing (INTEGER, TEXT, none) keeps its values as they are.
        return {
            name: read_declared(value, declared.get(name, ""), name)
            if value is not None and any(_declared_kinds(declared.get(name, "")))
            else value
            for name, value in row.items()
        }

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0  # non-zero: SQLite interrupts the statement

    def _error(self, exc: sqlite3.Error) -> SourceError:
        if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted":
            return SourceError(ERR_SOURCE.format(problem=ERR_TIMEOUT.format(seconds=self.statement_timeout)))
        return SourceError(ERR_SOURCE.format(problem=exc))

    def _execute(self, sql: str, params: list[Any]) -> Any:
        self._deadline = time.monotonic() + self.statement_timeout
        try:
            return self.connection.execute(sql, [str(p) if isinstance(p, Decimal) else p for p in params])
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        try:  # SQLite runs a statement as its rows are fetched: the deadline holds for the fetch too
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()
