"""Review of issue 18, finding 3: migration sources reach nothing outside their own database.

Each probe is an attack a plan's source query (or a query the product builds around it) could carry, run
through the source classes themselves, as the migration runs them: files, the network, extensions, other
databases, writes hidden behind stacked statements, comments, dollar quoting or an explicit COMMIT.
"""

from __future__ import annotations

import contextlib
import sqlite3

import duckdb
import psycopg
import pytest

from migration_app.sources import SourceError, source_open
from migration_app.sources.base import Relation

pytestmark = pytest.mark.django_db


def _query_relation(query: str) -> Relation:
    return Relation(schema="main", table=None, query=query, key=("id",))


# --- DuckDB --------------------------------------------------------------------------------------------


@pytest.fixture
def duck_url(tmp_path) -> str:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v VARCHAR)")
        connection.execute("INSERT INTO things VALUES (1, 'a')")
    (tmp_path / "outside.csv").write_text("id,secret\n1,outside-the-database\n")
    return f"duckdb:///{path}"


DUCK_ATTACKS = [
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_blob('/proc/self/environ')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
    "SELECT * FROM read_ndjson_objects('/etc/passwd')",
    "SELECT * FROM read_csv('{tmp}/outside.csv')",
    "SELECT * FROM '{tmp}/outside.csv'",
    "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM query('SELECT * FROM read_text(''/proc/self/environ'')')",
    "SELECT * FROM sqlite_scan('{tmp}/x.sqlite3', 't')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "SET allowed_directories = ['/']",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "ATTACH ':memory:' AS other",
    "COPY things TO '{tmp}/copied.csv'",
    "EXPORT DATABASE '{tmp}/exported'",
    "CREATE SECRET leak (TYPE S3, KEY_ID 'a', SECRET 'b')",
    "INSERT INTO things VALUES (2, 'b')",
    "CREATE TABLE written AS SELECT 1",
]


def test_duckdb_attacks_are_refused(duck_url, tmp_path):
    answered = []
    with source_open(url=duck_url) as source:
        for attack in DUCK_ATTACKS:
            try:
                source._fetch(attack.format(tmp=tmp_path), [])
                answered.append(attack)
            except SourceError:
                pass
    assert answered == []
    assert not (tmp_path / "copied.csv").exists()
    assert not (tmp_path / "exported").exists()
    assert not (tmp_path / "other.duckdb").exists()


DUCK_STACKED = [
    "SELECT 1 AS id; SET lock_configuration = false",
    "SELECT 1 AS id /* ; */; COPY things TO '{tmp}/copied.csv'",
    "SELECT 1 AS id -- comment\n; COPY things TO '{tmp}/copied.csv'",
    "SELECT $$;$$ AS id; COPY things TO '{tmp}/copied.csv'",
    "SELECT 1 AS id) AS src; COPY things TO '{tmp}/copied.csv'; SELECT * FROM (SELECT 1 AS id",
]


def test_duckdb_stacked_statements_behind_comments_and_quotes_are_refused(duck_url, tmp_path):
    answered = []
    with source_open(url=duck_url) as source:
        for tail in DUCK_STACKED:
            try:
                list(source.pages(_query_relation(tail.format(tmp=tmp_path)), page_size=10, after=None, upper=None))
                answered.append(tail)
            except SourceError:
                pass
    assert answered == []
    assert not (tmp_path / "copied.csv").exists()


def test_duckdb_a_query_source_reads_its_own_tables(duck_url):
    with source_open(url=duck_url) as source:
        pages = list(source.pages(_query_relation("SELECT id, v FROM things"), page_size=10, after=None, upper=None))
    assert [row["v"] for page in pages for row in page] == ["a"]


# --- SQLite ---------------------------------------------------------------------------------------------


@pytest.fixture
def lite_url(tmp_path) -> str:
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT)")
        connection.execute("INSERT INTO things VALUES (1, 'a')")
    return f"sqlite:///{path}"


SQLITE_ATTACKS = [
    "VACUUM INTO '{tmp}/copy.sqlite3'",
    "ATTACH DATABASE '{tmp}/attached.sqlite3' AS other",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so')",
    "SELECT readfile('/etc/passwd')",
    "CREATE TEMP TABLE t AS SELECT 1",
    "INSERT INTO things VALUES (2, 'b')",
    "SELECT 1 AS id; INSERT INTO things VALUES (3, 'c')",
]


def test_sqlite_attacks_are_refused(lite_url, tmp_path):
    answered = []
    with source_open(url=lite_url) as source:
        for attack in SQLITE_ATTACKS:
            try:
                source._fetch(attack.format(tmp=tmp_path), [])
                answered.append(attack)
            except SourceError:
                pass
        assert source._fetch("SELECT count(*) AS n FROM things", []) == [{"n": 1}]
    assert answered == []
    assert not (tmp_path / "copy.sqlite3").exists()
    assert not (tmp_path / "attached.sqlite3").exists()


# --- PostgreSQL -----------------------------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres_source) -> str:
    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE things (id integer PRIMARY KEY, v text)")
        connection.execute("CREATE SEQUENCE counter")
        connection.execute("INSERT INTO things VALUES (1, 'a')")
    return postgres_source


def _pg_state(url: str) -> tuple[list[str], int]:
    with psycopg.connect(url) as connection:
        tables = [row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        count = connection.execute("SELECT count(*) FROM things").fetchone()[0]
        large_objects = connection.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]
        sequence = connection.execute("SELECT last_value, is_called FROM counter").fetchone()
    return sorted(tables), count, large_objects, sequence


PG_ESCAPES = [
    # the COMMIT escape: end the read-only transaction, turn the default off, write
    "SELECT 1 AS id) AS src; COMMIT; SET default_transaction_read_only = off; CREATE TABLE escaped (); "
    "SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id) AS src; COMMIT; BEGIN READ WRITE; CREATE TABLE escaped (); COMMIT; SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id) AS src; ROLLBACK; START TRANSACTION READ WRITE; INSERT INTO things VALUES (9, 'x'); "
    "COMMIT; SELECT * FROM (SELECT 1 AS id",
    # statements behind comments and dollar quotes
    "SELECT 1 AS id /* ) AS src; */) AS src; CREATE TABLE escaped (); SELECT * FROM (SELECT 1 AS id",
    "SELECT $q$ ) $q$ AS s, 1 AS id) AS src; CREATE TABLE escaped (); SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id -- \n) AS src; CREATE TABLE escaped (); SELECT * FROM (SELECT 1 AS id",
    # writes from inside a SELECT
    "SELECT nextval('counter') AS id",
    "SELECT set_config('transaction_read_only', 'off', true) AS id",
    "SELECT 1 AS id FROM (SELECT set_config('role', 'postgres', false)) AS r, things FOR UPDATE",
    # writable CTE
    "WITH w AS (INSERT INTO things VALUES (9, 'x') RETURNING id) SELECT id FROM w",
    "WITH w AS (DELETE FROM things RETURNING id) SELECT id FROM w",
]


def test_postgres_query_source_cannot_write_or_stack(pg_url):
    before = _pg_state(pg_url)
    answered = []
    with source_open(url=pg_url) as source:
        for attack in PG_ESCAPES:
            try:
                list(source.pages(_query_relation(attack), page_size=10, after=None, upper=None))
                answered.append(attack)
            except SourceError:
                pass
            # and the connection is still read-only for the next query
            with pytest.raises(SourceError, match="read-only"):
                source._fetch("SELECT id FROM things FOR UPDATE", [])
    assert answered == []
    assert _pg_state(pg_url) == before


# PostgreSQL lets large-object functions write inside a READ ONLY transaction (seen on 15): the source
# must end its transactions by rolling back, so such a write never lands. (Defect found by this review.)
PG_LARGE_OBJECTS = [
    "SELECT lo_from_bytea(0, 'x') AS id",
    "SELECT lo_create(0) AS id",
    "SELECT lo_import('/etc/hostname') AS id",
]


def test_postgres_large_object_writes_from_a_read_only_query_never_land(pg_url):
    before = _pg_state(pg_url)
    with source_open(url=pg_url) as source:
        for attack in PG_LARGE_OBJECTS:
            with contextlib.suppress(SourceError):  # refused is as good as undone
                list(source.pages(_query_relation(attack), page_size=10, after=None, upper=None))
            source._fetch(attack, [])  # through the named cursor: answered, then rolled back
    assert _pg_state(pg_url) == before


PG_STACKED = [
    "COMMIT; CREATE TABLE escaped ()",
    "SELECT 1 AS id; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; CREATE TABLE escaped ()",
    "DECLARE c CURSOR FOR SELECT 1; CREATE TABLE escaped ()",
]


def test_postgres_every_query_path_runs_one_statement(pg_url):
    """Both ways a query reaches the server (``_fetch``'s named cursor and ``_execute``) refuse a second one."""
    before = _pg_state(pg_url)
    answered = []
    with source_open(url=pg_url) as source:
        for attack in PG_STACKED:
            for run in (source._fetch, source._execute):
                try:
                    run(attack, [])
                    answered.append((run.__name__, attack))
                except SourceError:
                    pass
    assert answered == []
    assert _pg_state(pg_url) == before
