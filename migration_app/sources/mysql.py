"""MySQL and MariaDB (``mysql://user:password@host:3306/database``) with PyMySQL.

PyMySQL is pure Python (no client library to build or install on CI or a laptop), maintained, and speaks
to both MySQL and MariaDB. The session is read-only (``SET SESSION TRANSACTION READ ONLY``; PyMySQL sends
no multi-statement flag, so a query is one statement, and ``LOCAL INFILE`` is off), has a connect timeout, a
statement timeout on the server (MariaDB's ``max_statement_time``, MySQL's ``max_execution_time``) and a
read timeout in the client a little longer than it, and is in UTC (``TIMESTAMP`` values come back as UTC;
``DATETIME`` has no zone and is taken as UTC, as everywhere in the engine). Only the URL's database is
visible: it is the DMS ``schema-name``.

Driver values: ``DECIMAL`` → Decimal (exact), ``TINYINT(1)``/``BIT(1)`` → boolean, ``TIME`` → a span (ISO
8601 duration: MySQL's TIME runs from -838:59:59 to 838:59:59), ``BLOB``/``BINARY`` → bytes, ``JSON``
(MariaDB: a LONGTEXT with a ``json_valid`` check) → maps and lists with exact numbers, ``ENUM``/``SET`` →
text.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

import pymysql

from lizzy.exact_json import exact_json
from migration_app.services.types import Unreadable, type_family
from migration_app.sources.base import (
    ERR_PRIVILEGED_ROLE,
    ERR_SOURCE,
    ERR_TIMEOUT,
    KEY,
    SourceError,
    SqlSource,
    encode_key,
    privileged_role_allowed,
)

CLIENT_TIMEOUT_MARGIN_SECONDS = 5  # the client's read timeout, past the server's own statement timeout
# The current account's global privileges that reach outside its database: FILE (LOAD_FILE, INTO OUTFILE) and
# SUPER. information_schema lists every account's grants to an administrator: filter on this one's grantee.
PRIVILEGED_GRANTS_SQL = (
    "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN ('FILE', 'SUPER') "
    "AND GRANTEE = CONCAT('\\'', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '\\'@\\'', "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '\\'')"
)
TIMEOUT_ERRORS = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL max_execution_time exceeded
UUID_BYTES = 16
BINLOG_ROWS_PER_QUERY = 500  # rows sent back through the server in one statement (filters, FLOAT)
_LENGTH = re.compile(r"^\s*(?:binary|bit)\s*\((\d+)\)", re.IGNORECASE)
_SET_MEMBERS = re.compile(r"'((?:[^']|'')*)'")
# python-mysql-replication reads YEAR as 1900 + the stored byte (0000 is 0: 1900) and TIMESTAMP as seconds since
# the epoch (the zero TIMESTAMP is 0 s: 1970-01-01 00:00:00, itself out of TIMESTAMP's range, which starts 1 s later)
BINLOG_ZERO_YEAR = 1900
BINLOG_ZERO_TIMESTAMP = dt.datetime(1970, 1, 1)  # noqa: DTZ001 (the reader's naive UTC value)
REASON_ZERO_TIMESTAMP = "a zero or invalid date the binlog does not carry exactly (a zero TIMESTAMP)"


class MysqlSource(SqlSource):
    placeholder = "%s"
    scheme = "mysql"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parsed = urlparse(url)
        self.database = parsed.path.lstrip("/")
        if not self.database:
            raise SourceError(ERR_SOURCE.format(problem="the mysql:// URL names no database"))
        try:
            self.connection = pymysql.connect(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 3306,
                user=unquote(parsed.username or "root"),
                password=unquote(parsed.password or ""),
                database=self.database,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                read_timeout=self.statement_timeout + CLIENT_TIMEOUT_MARGIN_SECONDS,
                local_infile=False,
                init_command="SET time_zone = '+00:00'",
            )
            with self.connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                if "mariadb" in self.connection.get_server_info().lower():
                    cursor.execute("SET SESSION max_statement_time = %s", [self.statement_timeout])
                else:
                    cursor.execute("SET SESSION max_execution_time = %s", [round(self.statement_timeout * 1000)])
                if not privileged_role_allowed():
                    self._refuse_privileged_role(cursor, role=unquote(parsed.username or "root"))
        except pymysql.MySQLError as exc:
            raise SourceError(ERR_SOURCE.format(problem=type(exc).__name__)) from exc

    def _refuse_privileged_role(self, cursor: Any, *, role: str) -> None:
        """A read-only session does not stop ``LOAD_FILE`` for a role with FILE: such a role is refused here."""
        cursor.execute(PRIVILEGED_GRANTS_SQL)
        held = sorted({row[0] for row in cursor.fetchall()})
        if held:
            self.connection.close()
            why = "holds the " + " and ".join(held) + " privilege" + ("s" if len(held) > 1 else "")
            raise SourceError(ERR_SOURCE.format(problem=ERR_PRIVILEGED_ROLE.format(role=role, why=why)))

    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def _relation_sql(self, schema: str, table: str | None, query: str | None) -> str:
        if query:
            return f"({query}) AS src"
        return self.quote(table)  # one database per URL: the schema is the URL's database

    def tables(self) -> list[tuple[str, str]]:
        rows = self._fetch(
            "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            [self.database],
        )
        return [(self.database, row["name"]) for row in rows]

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        rows = self._fetch(
            "SELECT COLUMN_NAME AS name FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            [self.database, table],
        )
        return [row["name"] for row in rows]

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        rows = self._fetch(
            "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            [self.database, table],
        )
        declared = {row["name"]: row["type"] for row in rows}
        # MariaDB's JSON is LONGTEXT with a json_valid() check constraint named after the column.
        checks = self._fetch(
            "SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            [self.database, table],
        )
        for check in checks:
            clause = str(check["clause"]).lower().replace("`", "")
            for name in declared:
                if clause == f"json_valid({name.lower()})":
                    declared[name] = "json"
        return declared

    def filter_param(self, value: str, declared: str) -> Any:
        # MySQL compares a string with a number as two doubles: big integers and decimals would round.
        family = type_family(declared)
        if family == "integer":
            return int(value)
        if family == "decimal":
            return Decimal(value)
        if family == "float":
            return float(value)
        return value

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)

    def _convert(self, row: dict[str, Any], declared: dict[str, str]) -> dict[str, Any]:
        out = {}
        for name, value in row.items():
            if value is not None:
                family = type_family(declared.get(name, ""))
                if family == "boolean":
                    number = int.from_bytes(value, "big") if isinstance(value, bytes) else value
                    if number in (0, 1):
                        value = bool(number)
                    else:  # TINYINT(1) holds -128..127: 5 is data, not "true"
                        problem = f"{number} is not 0 or 1"
                        value = Unreadable(column=name, declared=declared.get(name, ""), raw=number, problem=problem)
                elif family == "json" and isinstance(value, (str, bytes)):
                    value = exact_json(value)
                elif family == "timestamp" and isinstance(value, dt.datetime) and value.tzinfo is None:
                    value = value.replace(tzinfo=dt.UTC)
            out[name] = value
        return out

    def rows_from_binlog(
        self, relation: Any, *, columns: list[tuple[str, str]], tuples: list[list[Any]]
    ) -> list[tuple[dict[str, Any], bool]]:
        """Row images of the binlog (python-mysql-replication's values) → rows exactly as ``pages`` reads them.

        The reader decodes most types to what PyMySQL returns for a SELECT (measured on MariaDB 10.11: integers,
        DECIMAL, DOUBLE, text (in binlog.py's exact decoding), VARBINARY/BLOB, DATE, DATETIME, TIMESTAMP, TIME, YEAR,
        ENUM, MariaDB's JSON); the rest is put right here: ``FLOAT`` comes as the single-precision value's exact
        double (``1.100000023841858``) and goes back through the server (``CAST(? AS FLOAT)``) to read as a SELECT
        reads it (``1.1``); an empty binary value comes as ``""`` (to ``b""``); MariaDB's ``UUID`` as its bytes
        (padded to 16, back through the server, ``CAST(? AS UUID)``, to its text); ``BINARY(n)`` is padded back with
        NUL bytes; ``SET`` comes as a Python set (in the declared order, comma-joined); ``BIT(n)`` as a string of bits
        (to bytes); YEAR 0000 as 1900 (to 0); the zero TIMESTAMP as 1970-01-01 00:00:00 (a bad value, as the reader's
        zero dates). The relation's DMS filters are evaluated by the server on the values, as ``rows_from_text`` does
        for PostgreSQL. ``columns`` are (name, declared type) pairs.
        """
        if not tuples:
            return []
        declared = {
            **self.column_types(schema=relation.schema, table=relation.table, query=relation.query),
            **dict(relation.types),
        }
        names = [name for name, _type in columns]
        rows = [dict(zip(names, values, strict=True)) for values in tuples]
        floats = [name for name in names if declared.get(name, "").lower().startswith("float")]
        for name in names:
            kind = declared.get(name, "").lower()
            for row in rows:
                value = row[name]
                if value is None:
                    continue
                if value == "" and type_family(kind) == "binary":
                    # the reader decodes a binary value by the name "binary", no codec: Python decodes b"" to ""
                    # without looking it up (longer values stay bytes), and BINARY(n) of NULs is b"" in the binlog
                    value = row[name] = b""
                if kind.startswith("set(") and isinstance(value, (set, frozenset)):
                    members = [member.replace("''", "'") for member in _SET_MEMBERS.findall(kind)]
                    order = {member.lower(): position for position, member in enumerate(members)}
                    row[name] = ",".join(sorted(value, key=lambda member: order.get(member.lower(), len(order))))
                elif kind.startswith("bit(") and isinstance(value, str):
                    row[name] = int(value or "0", 2).to_bytes((int(_LENGTH.match(kind).group(1)) + 7) // 8, "big")
                elif kind.startswith("binary(") and isinstance(value, bytes):
                    row[name] = value.ljust(int(_LENGTH.match(kind).group(1)), b"\0")
                elif kind.startswith("year") and value == BINLOG_ZERO_YEAR:
                    row[name] = 0
                elif kind.startswith("timestamp") and value == BINLOG_ZERO_TIMESTAMP:
                    # a SELECT reads it as text, as a zero DATE: the row is bad, as the reader's zero dates are
                    row[name] = Unreadable(column=name, declared=kind, raw=None, problem=REASON_ZERO_TIMESTAMP)
        if floats:
            self._floats_as_selected(rows, floats)
        uuids = [name for name in names if declared.get(name, "").lower() == "uuid"]
        if uuids:
            self._uuids_as_selected(rows, uuids)
        matched = self._filters_matched(relation, rows, names) if relation.filters else [True] * len(rows)
        out = []
        for row, passes in zip(rows, matched, strict=True):
            result = self._convert(row, declared)
            result[KEY] = encode_key([row[column] for column in relation.key])
            out.append((result, passes))
        return out

    def _floats_as_selected(self, rows: list[dict[str, Any]], names: list[str]) -> None:
        values = [(row, name) for row in rows for name in names if isinstance(row[name], float)]
        for start in range(0, len(values), BINLOG_ROWS_PER_QUERY):
            chunk = values[start : start + BINLOG_ROWS_PER_QUERY]
            sql = "SELECT " + ", ".join(f"CAST(%s AS FLOAT) AS v{n}" for n in range(len(chunk)))
            found = self._fetch(sql, [repr(row[name]) for row, name in chunk])[0]
            for position, (row, name) in enumerate(chunk):
                row[name] = found[f"v{position}"]

    def _uuids_as_selected(self, rows: list[dict[str, Any]], names: list[str]) -> None:
        """MariaDB's UUID comes as its 16 bytes (the server's binary form, trailing NULs cut as BINARY's): the
        server gives its text back."""
        # the nil UUID is all NULs, cut to b"", which the reader decodes to "" (see the empty binary value)
        values = [(row, name) for row in rows for name in names if isinstance(row[name], bytes) or row[name] == ""]
        for start in range(0, len(values), BINLOG_ROWS_PER_QUERY):
            chunk = values[start : start + BINLOG_ROWS_PER_QUERY]
            sql = "SELECT " + ", ".join(f"CAST(%s AS UUID) AS v{n}" for n in range(len(chunk)))
            found = self._fetch(sql, [bytes(row[name] or b"").ljust(UUID_BYTES, b"\0") for row, name in chunk])[0]
            for position, (row, name) in enumerate(chunk):
                row[name] = found[f"v{position}"]

    def _filters_matched(self, relation: Any, rows: list[dict[str, Any]], names: list[str]) -> list[bool]:
        """Whether each row passes the relation's DMS filters, as the server compares them."""
        clauses, filter_params = self._filters_sql(relation)
        match = " AND ".join(clauses)
        quoted = [self.quote(name) for name in names]
        matched: list[bool] = []
        for start in range(0, len(rows), BINLOG_ROWS_PER_QUERY):
            chunk = rows[start : start + BINLOG_ROWS_PER_QUERY]
            selects, params = [], []
            for position, row in enumerate(chunk):
                selects.append("SELECT " + ", ".join(f"%s AS {name}" for name in [*quoted, "__lizzy_ord"]))
                params += [*(None if isinstance(row[name], Unreadable) else row[name] for name in names), position]
            sql = f"SELECT __lizzy_ord, ({match}) AS __lizzy_match FROM ({' UNION ALL '.join(selects)}) AS src"  # noqa: S608
            found = {row["__lizzy_ord"]: bool(row["__lizzy_match"]) for row in self._fetch(sql, filter_params + params)}
            matched += [found[position] for position in range(len(chunk))]
        return matched

    def unexact_condition(self, column: str, declared: str) -> str | None:
        if type_family(declared) not in ("decimal", "float"):
            return None
        digits = f"length(trim(both '0' from replace(replace(cast(abs({column}) AS char), '.', ''), '-', '')))"
        return f"abs({column}) >= 1e126 OR ({column} <> 0 AND abs({column}) < 1e-130) OR {digits} > 38"

    def _fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        cursor.close()
        return rows

    def _execute(self, sql: str, params: list[Any]) -> Any:
        try:
            cursor = self.connection.cursor()
            cursor.execute(sql, params or None)
            return cursor
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in TIMEOUT_ERRORS:
                raise SourceError(
                    ERR_SOURCE.format(problem=ERR_TIMEOUT.format(seconds=self.statement_timeout))
                ) from exc
            raise SourceError(ERR_SOURCE.format(problem=exc.args[-1] if exc.args else type(exc).__name__)) from exc

    def close(self) -> None:
        self.connection.close()
