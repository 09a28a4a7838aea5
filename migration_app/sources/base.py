"""What every source does: describe its tables, and stream rows in key order, page by page.

Rows are read in key order with keyset pagination (``WHERE (k1, k2) > (:v1, :v2) ORDER BY k1, k2 LIMIT n``),
one page at a time, so memory stays flat however large the table and a checkpoint is just the last key.
The row-value comparison is what an index range scan uses on every engine here (PostgreSQL, SQLite 3.15+,
DuckDB, MySQL 8 / MariaDB 10.3+); a redundant ``k1 >= :v1`` on the leading column lets planners that do not
turn row values into index ranges still seek instead of scanning. Tables without a primary key page by the
engine's row id (``rowid`` in SQLite and DuckDB, ``ctid`` in PostgreSQL), stable while the table is not
rewritten.

Checkpoints are JSON: a key value that JSON cannot carry exactly (bytes, Decimal, datetimes, UUIDs) is
stored tagged (``{"$bytes": base64}``) and turned back into the same Python value before it is bound, so a
``bytea`` or BLOB key pages exactly like an integer one. A page whose last key is not after the previous
checkpoint stops the run with an error instead of reading the same rows forever.

DMS source filters (``filters`` of a selection rule) are pushed into every query of the relation: pages,
counts and segment boundaries all see the same rows, and validation reads through the same relation.

A source URL and a ``source-query`` are configuration (a superuser's, audited in the admin log), yet each
engine still holds them to what a migration needs: a read-only connection (a read-only transaction on
PostgreSQL and MySQL/MariaDB, a read-only file on SQLite and DuckDB, DuckDB without file, network or
extension access), a connect timeout and a statement timeout (``LIZZY_SOURCE_CONNECT_TIMEOUT``,
``LIZZY_SOURCE_STATEMENT_TIMEOUT``), and exactly one statement per query. A source error's text is
scrubbed of secret values (``lizzy.scrub``) when it is raised, so the admin, task results, the run's
``last_error`` and logs never see them.

Subclasses (one module per engine, chosen by URL scheme in ``migration_app.sources``) say how to connect,
list tables, find primary keys and declared types, and turn driver values into the values of
``migration_app.services.types``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from lizzy.errors import ApplicationError
from lizzy.scrub import secrets_scrub
from migration_app.services.types import Unreadable

RECONNECT_ATTEMPTS = 3  # per query: a source that keeps dropping us is reported, not retried forever
ERR_SCHEME = (
    "Unsupported source URL scheme {scheme!r}: use postgres://, mysql://, sqlite:///FILE, duckdb:///FILE or redis://."
)
ERR_SOURCE = "Cannot read the source database: {problem}"
ERR_ONE_STATEMENT = "a source query must be one SELECT statement (found {count} statements)"
ERR_TIMEOUT = "the query ran longer than LIZZY_SOURCE_STATEMENT_TIMEOUT ({seconds:g} s) and was cancelled"
CONNECT_TIMEOUT_SECONDS = 10.0  # defaults of LIZZY_SOURCE_CONNECT_TIMEOUT / LIZZY_SOURCE_STATEMENT_TIMEOUT
STATEMENT_TIMEOUT_SECONDS = 600.0  # a COUNT(*) or a segment boundary on a large unindexed table takes minutes
ERR_STUCK = (
    "The checkpoint of {relation} did not advance past {key}: the source returned the same key twice "
    "(a key that does not order the rows uniquely?). Stopped instead of reading the same rows again."
)
ESTIMATE_TRUSTED_FROM = 10_000  # rows: below this, planner statistics are checked with an exact COUNT
ROWID = "__rowid"
KEY = "__key"  # every row read carries its encoded source key under this name (never written)
# A row the source read but cannot hand over as it is (a Redis value django-redis cannot read, a key that is
# not UTF-8): the reason under this name; the engine quarantines the row instead of writing it (never written).
ROW_ERROR = "__error"
VERSION = "__version"  # validation's settle step: the row version a source reports (PostgreSQL: xmin)
ROWS_BY_KEYS_CHUNK = 500  # keys per query of rows_by_keys (a two-column key binds 1,000 parameters)

# DMS filter operators: name → (values it takes, SQL with {c} for the column and ? for each value)
FILTER_OPERATORS: dict[str, tuple[int, str]] = {
    "lte": (1, "{c} <= ?"),
    "ste": (1, "{c} <= ?"),  # DMS: an alias of lte
    "gte": (1, "{c} >= ?"),
    "eq": (1, "{c} = ?"),
    "noteq": (1, "{c} <> ?"),
    "between": (2, "{c} BETWEEN ? AND ?"),
    "notbetween": (2, "{c} NOT BETWEEN ? AND ?"),
    "null": (0, "{c} IS NULL"),
    "notnull": (0, "{c} IS NOT NULL"),
}
NEGATIVE_OPERATORS = frozenset({"noteq", "notbetween", "notnull"})


class SourceError(ApplicationError):
    """A source failed; the message is scrubbed of secrets here, once, whatever the driver quoted."""

    code = "source_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(secrets_scrub(message), details=details)


ERR_PRIVILEGED_ROLE = (
    "the source role {role!r} {why}, so a source query could reach outside its database (the database server's "
    "files or programs). Connect as a role that may only SELECT the tables the mapping reads "
    '(docs/OPERATIONS.md, "Source roles"), or set LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE=1 for a trusted source'
)


def privileged_role_allowed() -> bool:
    """Whether a source may connect as a role that can read the server's files (LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE)."""
    return settings.configured and bool(getattr(settings, "LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE", False))


def source_timeouts() -> tuple[float, float]:
    """(connect, statement) timeouts in seconds, from settings (the defaults where Django is not set up)."""
    if not settings.configured:
        return CONNECT_TIMEOUT_SECONDS, STATEMENT_TIMEOUT_SECONDS
    return (
        float(getattr(settings, "LIZZY_SOURCE_CONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)),
        float(getattr(settings, "LIZZY_SOURCE_STATEMENT_TIMEOUT", STATEMENT_TIMEOUT_SECONDS)),
    )


@dataclass(frozen=True)
class FilterCondition:
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceFilter:
    """One DMS filter: conditions on one column, ORed; filters of a relation are ANDed."""

    column: str
    conditions: tuple[FilterCondition, ...]


@dataclass(frozen=True)
class Relation:
    """What an entity reads: a table or a query, its paging key, its filters and optional change column."""

    schema: str
    table: str | None
    query: str | None
    key: tuple[str, ...]
    changed_at_column: str | None = None
    types: tuple[tuple[str, str], ...] = ()  # declared types a query cannot report (the mapping's column-types)
    filters: tuple[SourceFilter, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}" if self.table else "source-query"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- checkpoints: JSON in, the same Python values out -------------------------------------------------


def encode_key_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}  # JSON (and PostgreSQL's json type) has no NaN or Infinity
    if isinstance(value, str) and "\x00" in value:
        # PostgreSQL's jsonb holds no NUL (a checkpoint, a unit's bounds): the text's UTF-8, in base64
        return {"$text": base64.b64encode(value.encode("utf-8", "surrogatepass")).decode()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Unreadable):  # shown in the quarantine as the driver returned it
        return encode_key_value(value.raw)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    return str(value)


def decode_key_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, text),) = value.items()
    if tag == "$bytes":
        return base64.b64decode(text)
    if tag == "$decimal":
        return Decimal(text)
    if tag == "$text":
        return base64.b64decode(text).decode("utf-8", "surrogatepass")
    if tag == "$float":
        return float(text)
    if tag == "$datetime":
        return dt.datetime.fromisoformat(text)
    if tag == "$date":
        return dt.date.fromisoformat(text)
    if tag == "$time":
        return dt.time.fromisoformat(text)
    if tag == "$uuid":
        return uuid.UUID(text)
    raise SourceError(ERR_SOURCE.format(problem=f"unknown checkpoint value {value!r}"))


def encode_key(values: list[Any]) -> list[Any]:
    return [
        value if type(value) is int or (type(value) is str and "\x00" not in value) else encode_key_value(value)
        for value in values
    ]


def decode_key(values: list[Any] | None) -> list[Any] | None:
    return None if values is None else [decode_key_value(value) for value in values]


def key_shown(values: list[Any]) -> list[Any]:
    """A source key as a person reads it (the quarantine, an error, a validation sample): a text value
    checkpointed in base64 because it holds a NUL (``encode_key``) as its text again (the quarantine then
    writes each NUL as ``\\u0000``: ``nul_escaped``); the other tagged values as the checkpoint holds them."""
    if not isinstance(values, list):
        return values  # a checkpoint of another shape (Redis: SCAN's cursor)
    return [decode_key_value(value) if isinstance(value, dict) and "$text" in value else value for value in values]


class SqlSource:
    """Keyset paging over any DB-API connection; subclasses say how to connect and describe tables."""

    placeholder = "?"
    ignores_schema = False
    rowid_expression = "rowid"
    scheme = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connect_timeout, self.statement_timeout = source_timeouts()
        self._declared: dict[tuple[str, str | None, str | None], dict[str, str]] = {}

    # -- description ------------------------------------------------------------------------------
    def tables(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def primary_key(self, *, schema: str, table: str) -> list[str]:
        raise NotImplementedError

    def _declared_types(self, *, schema: str, table: str) -> dict[str, str]:
        return {}

    def quote(self, name: str) -> str:
        return quote(name)

    def _relation_sql(self, schema: str, table: str | None, query: str | None) -> str:
        if query:
            return f"({query}) AS src"
        return f"{self.quote(schema)}.{self.quote(table)}" if schema and not self.ignores_schema else self.quote(table)

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

    def unexact_condition(self, column: str, declared: str) -> str | None:
        """SQL true for a value of ``column`` DynamoDB cannot hold exactly (None: this engine cannot tell)."""
        return None

    def as_text(self, column: str) -> str:
        return f"CAST({column} AS CHAR)"

    def unexact_values(self, relation: Relation, *, columns: dict[str, str]) -> list[tuple[str, Any]]:
        """(column, sample value) of the selected rows' values DynamoDB cannot hold exactly."""
        found = []
        where, params = self._where(relation, lower=None, upper=None, since=None)
        for name, declared in columns.items():
            column = self.quote(name)
            condition = self.unexact_condition(column, declared)
            if condition is None:
                continue
            sql = (
                f"SELECT {self.as_text(column)} AS v FROM ({self._select(relation)}) AS probe"  # noqa: S608
                f"{where}{' AND ' if where else ' WHERE '}{column} IS NOT NULL AND ({condition}) LIMIT 1"
            )
            rows = self._fetch(sql, params)
            if rows:
                found.append((name, rows[0]["v"]))
        return found

    def relation(self, entity: Any) -> Relation:
        key = tuple(entity.source_key) or (ROWID,)
        types = tuple(sorted(entity.column_types.items()))
        return Relation(
            entity.schema, entity.table, entity.query, key, entity.changed_at_column, types, tuple(entity.filters)
        )

    # -- reading --------------------------------------------------------------------------------
    def _select(self, relation: Relation) -> str:
        source = self._relation_sql(relation.schema, relation.table, relation.query)
        if relation.key == (ROWID,):
            return f"SELECT * FROM (SELECT {self.rowid_expression} AS {ROWID}, * FROM {source}) AS keyed"  # noqa: S608
        return f"SELECT * FROM {source}"  # noqa: S608

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _key_bound(self, relation: Relation, values: list[Any], operator: str) -> tuple[str, list[Any]]:
        columns = [self.quote(column) for column in relation.key]
        if len(columns) == 1:
            return self._sql(f"{columns[0]} {operator} ?"), [values[0]]
        marks = ", ".join("?" for _ in columns)
        lead = ">=" if operator == ">" else "<="
        sql = f"{columns[0]} {lead} ? AND ({', '.join(columns)}) {operator} ({marks})"
        return self._sql(sql), [values[0], *values]

    def filter_param(self, value: str, declared: str) -> Any:
        """A DMS filter value (always text in the mapping) as this engine should compare it."""
        return value

    def _filters_sql(self, relation: Relation) -> tuple[list[str], list[Any]]:
        clauses, params = [], []
        declared = {**self.column_types(schema=relation.schema, table=relation.table, query=relation.query)}
        declared.update(dict(relation.types))
        for source_filter in relation.filters:
            column = self.quote(source_filter.column)
            ors = []
            for condition in source_filter.conditions:
                _arity, template = FILTER_OPERATORS[condition.operator]
                ors.append(self._sql(template.format(c=column)))
                params += [
                    self.filter_param(value, declared.get(source_filter.column, "")) for value in condition.values
                ]
            clauses.append("(" + " OR ".join(ors) + ")")
        return clauses, params

    def _where(
        self, relation: Relation, *, lower: list[Any] | None, upper: list[Any] | None, since: dt.datetime | None
    ) -> tuple[str, list[Any]]:
        clauses, params = self._filters_sql(relation)
        if lower is not None:
            sql, values = self._key_bound(relation, self._bind_key(relation, decode_key(lower)), ">")
            clauses.append(sql)
            params += values
        if upper is not None:
            sql, values = self._key_bound(relation, self._bind_key(relation, decode_key(upper)), "<=")
            clauses.append(sql)
            params += values
        if since is not None and relation.changed_at_column:
            clauses.append(self._sql(f"{self.quote(relation.changed_at_column)} > ?"))
            params.append(self._time_param(since))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _bind_key(self, relation: Relation, values: list[Any]) -> list[Any]:
        return values

    def _time_param(self, moment: dt.datetime) -> Any:
        return moment

    def _order(self, relation: Relation) -> str:
        return " ORDER BY " + ", ".join(self.quote(column) for column in relation.key)

    def count(
        self,
        relation: Relation,
        *,
        since: dt.datetime | None = None,
        lower: list[Any] | None = None,
        upper: list[Any] | None = None,
    ) -> int:
        """Rows of the relation (filters applied, changed after ``since``), optionally within a key range."""
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
        cuts: list[list[Any]] = []
        for position in range(1, segments):
            offset = total * position // segments - 1
            sql = (
                f"SELECT {', '.join(self.quote(c) for c in relation.key)} FROM ({self._select(relation)}) AS cut"  # noqa: S608
                f"{where}{self._order(relation)} LIMIT 1 OFFSET {int(offset)}"
            )
            cursor = self._execute(sql, params)
            row = cursor.fetchone()
            cursor.close()
            if row is not None:
                encoded = encode_key(list(row))
                if not cuts or encoded != cuts[-1]:
                    cuts.append(encoded)
        return cuts

    # -- work units: cheap estimates and keyset probes (never COUNT + OFFSET per cut) -----------------
    # Planner statistics per engine: an estimate, refreshed by ANALYZE; None where the engine keeps none.
    ESTIMATE_SQL = {
        "postgres": (
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ?"
        ),
        "mysql": "SELECT table_rows FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
    }

    def estimate_rows(self, relation: Relation, *, since: dt.datetime | None = None) -> int:
        """About how many rows the relation selects: the planner's statistics for a whole table, else COUNT(*).

        Only progress bars and the unit size of ``--segments`` use it; unit boundaries come from probes.
        """
        sql = self.ESTIMATE_SQL.get(self.scheme)
        if sql and relation.table and not relation.filters and since is None:
            try:
                cursor = self._execute(self._sql(sql), [relation.schema, relation.table])
                row = cursor.fetchone()
                cursor.close()
            except SourceError:
                row = None
            # Statistics of a table never analysed say -1 or 0: a small count is cheap when it is true.
            if row is not None and row[0] is not None and int(row[0]) >= ESTIMATE_TRUSTED_FROM:
                return int(row[0])
        return self.count(relation, since=since)

    def key_after(
        self, relation: Relation, *, after: list[Any] | None, rows: int, since: dt.datetime | None = None
    ) -> list[Any] | None:
        """The key of the ``rows``-th row after ``after`` (a keyset probe), or None when no row follows that one
        (the range after ``after`` is one unit: no empty unit after the cut).

        One index range walk of ``rows`` entries from a seek: cutting a table into units costs one walk of
        its key index in total, not a COUNT and an OFFSET from the start for every cut.
        """
        where, params = self._where(relation, lower=after, upper=None, since=since)
        sql = (
            f"SELECT {', '.join(self.quote(c) for c in relation.key)} FROM ({self._select(relation)}) AS probe"  # noqa: S608
            f"{where}{self._order(relation)} LIMIT 2 OFFSET {max(int(rows) - 1, 0)}"
        )
        cursor = self._execute(sql, params)
        found = cursor.fetchall()
        cursor.close()
        return encode_key(list(found[0])) if len(found) == 2 else None

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
            key = relation.key
            converted = []
            for row in rows:
                out = self._convert(row, declared)
                out[KEY] = encode_key([row[column] for column in key])  # the raw key: what the next query binds
                converted.append(out)
            last = converted[-1][KEY]
            if after is not None and last == after:
                raise SourceError(ERR_STUCK.format(relation=relation.label, key=last))
            yield converted
            after = last
            if len(rows) < page_size:
                return

    # -- validation's settle step: a consistent snapshot, rows by key with their version ------------------
    @contextlib.contextmanager
    def snapshot(self) -> Iterator[bool]:
        """Read every query inside one consistent snapshot; yields whether this engine gives one.

        Here (SQLite, DuckDB, MySQL/MariaDB: the last one's settle step takes its row versions from the
        binlog, cdc/binlog.py) it gives none: each query reads the source as it is then.
        """
        yield False

    def _versioned_select(self, relation: Relation) -> str:
        """``_select`` plus a ``__version`` column that changes whenever the row changes (none here)."""
        return f"SELECT *, NULL AS {VERSION} FROM ({self._select(relation)}) AS unversioned"  # noqa: S608

    def rows_by_keys(self, relation: Relation, *, keys: list[list[Any]]) -> list[tuple[dict[str, Any], Any]]:
        """(row, version) of the rows whose source key is one of ``keys`` (encoded, as ``row[KEY]`` holds
        them) and that pass the relation's filters, converted exactly as ``pages`` converts them."""
        declared = {
            **self.column_types(schema=relation.schema, table=relation.table, query=relation.query),
            **dict(relation.types),
        }
        columns = [self.quote(column) for column in relation.key]
        found: list[tuple[dict[str, Any], Any]] = []
        for start in range(0, len(keys), ROWS_BY_KEYS_CHUNK):
            chunk = keys[start : start + ROWS_BY_KEYS_CHUNK]
            where, params = self._where(relation, lower=None, upper=None, since=None)
            marks = "(" + ", ".join("?" for _ in columns) + ")"
            wanted = f"({', '.join(columns)}) IN ({', '.join(marks for _ in chunk)})"
            for key in chunk:
                params += self._bind_key(relation, decode_key(key))
            sql = (
                f"SELECT * FROM ({self._versioned_select(relation)}) AS picked"  # noqa: S608
                f"{where}{' AND ' if where else ' WHERE '}{self._sql(wanted)}"
            )
            for row in self._fetch(sql, params):
                version = row.pop(VERSION, None)
                out = self._convert(row, declared)
                out[KEY] = encode_key([row[column] for column in relation.key])
                found.append((out, version))
        return found

    def key_of(self, row: dict[str, Any], relation: Relation) -> list[Any]:
        """A row's source key as a checkpoint holds it (JSON), taken before any conversion."""
        return row[KEY]

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
