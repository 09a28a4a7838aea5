"""SQLite files (``sqlite:///FILE``), opened read-only.

SQLite knows five storage classes, so declared column types (BOOLEAN, JSON, TIMESTAMP, DECIMAL...) say how
to read values; a column without a declared type keeps the value's own type.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from migration_app.sources.base import ERR_SOURCE, SourceError, SqlSource


def read_declared(value: Any, declared: str) -> Any:
    """JSON columns come back as text; SQLite also flattens booleans, times and decimals."""
    if value is None:
        return None
    upper = declared.upper()
    if "JSON" in upper and isinstance(value, str):
        return json.loads(value, parse_float=Decimal)
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
    scheme = "sqlite"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else urlparse(url).path
        try:
            self.connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
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

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        return {name: read_declared(value, declared.get(name, "")) for name, value in row.items()}

    def _execute(self, sql: str, params: list[Any]) -> Any:
        try:
            return self.connection.execute(sql, [str(p) if isinstance(p, Decimal) else p for p in params])
        except sqlite3.Error as exc:
            raise SourceError(ERR_SOURCE.format(problem=exc)) from exc

    def close(self) -> None:
        self.connection.close()
