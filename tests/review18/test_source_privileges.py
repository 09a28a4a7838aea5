"""Review of issue 18, finding 3, MySQL/MariaDB and the source role's own privileges.

MariaDB: stacked statements hidden in comments or quotes, ``INTO OUTFILE``/``DUMPFILE`` from a query, a write
after the session's read-only mode; all refused. What no transaction confines is what the source *role* may
do: a PostgreSQL superuser's ``pg_read_file`` reads the database server's files, MariaDB's ``LOAD_FILE`` does
with the FILE privilege. Such a role is refused when the source connects, unless
LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE says the source is trusted (the test suite's own sources are).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pymysql
import pytest

from migration_app.sources import SourceError, source_open
from migration_app.sources.base import Relation

pytestmark = pytest.mark.django_db


def _relation(query: str) -> Relation:
    return Relation(schema="", table=None, query=query, key=("id",))


def _mysql_connect(url: str, database: str | None = None):
    parsed = urlparse(url)
    return pymysql.connect(
        host=parsed.hostname,
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=database,
    )


@pytest.fixture
def my_url(mariadb_source) -> str:
    connection = _mysql_connect(mariadb_source, urlparse(mariadb_source).path[1:])
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE things (id int PRIMARY KEY, v varchar(10))")
        cursor.execute("INSERT INTO things VALUES (1, 'a')")
    connection.commit()
    connection.close()
    return mariadb_source


def _mysql_state(url: str):
    connection = _mysql_connect(url, urlparse(url).path[1:])
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        tables = sorted(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT count(*) FROM things")
        count = cursor.fetchone()[0]
    connection.close()
    return tables, count


MYSQL_ATTACKS = [
    "SELECT 1 AS id) AS src; CREATE TABLE escaped (a int); SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id /* ) AS src; */) AS src; CREATE TABLE escaped (a int); SELECT * FROM (SELECT 1 AS id",
    "SELECT ';' AS s, 1 AS id) AS src; INSERT INTO things VALUES (2, 'b'); SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id) AS src; COMMIT; SET SESSION TRANSACTION READ WRITE; CREATE TABLE escaped (a int); "
    "SELECT * FROM (SELECT 1 AS id",
    "SELECT 1 AS id INTO OUTFILE '/tmp/lizzy-review18-outfile'",
    "SELECT 1 AS id INTO DUMPFILE '/tmp/lizzy-review18-dumpfile'",
    "SELECT id FROM things FOR UPDATE",
]


def test_mysql_query_sources_cannot_stack_write_or_write_files(my_url):
    before = _mysql_state(my_url)
    answered = []
    with source_open(url=my_url) as source:
        for attack in MYSQL_ATTACKS:
            with contextlib.suppress(SourceError):
                list(source.pages(_relation(attack), page_size=10, after=None, upper=None))
                answered.append(attack)
        for statement in ("CREATE TABLE written (a int)", "INSERT INTO things VALUES (3, 'c')"):
            with pytest.raises(SourceError):
                source._fetch(statement, [])
    assert answered == []
    assert _mysql_state(my_url) == before
    # (the test server runs on this machine: a file it wrote would be here)
    assert not Path("/tmp/lizzy-review18-outfile").exists()
    assert not Path("/tmp/lizzy-review18-dumpfile").exists()


@pytest.fixture
def pg_url(postgres_source) -> str:
    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE things (id integer PRIMARY KEY, v text)")
    return postgres_source


@pytest.fixture
def select_only_role(pg_url) -> tuple[str, str]:
    """A login role that may only SELECT ``things``: what docs/OPERATIONS.md tells a team to give a source."""
    role = f"lizzy_r18_{uuid.uuid4().hex[:8]}"
    database = urlparse(pg_url).path[1:]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        admin.execute(f'GRANT SELECT ON things TO "{role}"')
    parsed = urlparse(pg_url)
    yield role, parsed._replace(netloc=f"{role}@{parsed.hostname}:{parsed.port or 5432}").geturl()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


def test_a_postgres_source_role_that_can_read_server_files_is_refused(pg_url, settings):
    settings.LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = False
    with pytest.raises(SourceError) as refused, source_open(url=pg_url):
        pass
    message = str(refused.value)
    assert "is a superuser" in message, message
    assert "LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE" in message, message


def test_a_postgres_member_of_pg_read_server_files_is_refused(select_only_role, pg_url, settings):
    role, url = select_only_role
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'GRANT pg_read_server_files TO "{role}"')
    settings.LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = False
    with pytest.raises(SourceError, match="member of pg_read_server_files"), source_open(url=url):
        pass


def test_a_select_only_postgres_role_reads_and_cannot_read_server_files(select_only_role, settings):
    role, url = select_only_role
    settings.LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = False
    with source_open(url=url) as source:
        assert source._fetch("SELECT count(*) AS n FROM things", []) == [{"n": 0}]
        with pytest.raises(SourceError):
            source._fetch("SELECT pg_read_file('/etc/hostname') AS id", [])


def test_a_mysql_account_with_the_file_privilege_is_refused(my_url, settings):
    settings.LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = False  # the test server's root holds FILE and SUPER
    with pytest.raises(SourceError, match="holds the FILE and SUPER privileges"), source_open(url=my_url):
        pass


def test_a_mysql_account_without_file_reads(my_url, settings):
    account = f"lizzy_r18_{uuid.uuid4().hex[:8]}"
    parsed = urlparse(my_url)
    database = parsed.path[1:]
    admin = _mysql_connect(my_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{account}'@'%'")
            cursor.execute(f"GRANT SELECT ON `{database}`.* TO '{account}'@'%'")
        settings.LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = False
        url = parsed._replace(netloc=f"{account}@{parsed.hostname}:{parsed.port or 3306}").geturl()
        with source_open(url=url) as source:
            assert source._fetch("SELECT count(*) AS n FROM things", []) == [{"n": 1}]
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{account}'@'%'")
        admin.close()
