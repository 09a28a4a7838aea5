"""Issue 18, finding 3: a migration source cannot reach outside its database, and its errors carry no secrets.

Each engine is attacked the way the review did: DuckDB queries that read files, URLs and the environment,
stacked statements that write (PostgreSQL, MariaDB, SQLite), a session default turned off from inside a query,
queries that run forever, servers that never answer a connection. Secret values planted in the environment
must not reach the admin's messages, the run's error, the Celery task result or the log.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
from collections.abc import Iterator
from urllib.parse import urlparse

import duckdb
import psycopg
import pymysql
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse

from lizzy.errors import ApplicationError
from lizzy.scrub import REPLACEMENT, secrets_forget, secrets_scrub
from migration_app.models import MigrationPlan, RunStatus
from migration_app.selectors import run_progress
from migration_app.services.plans import plan_check, plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.sources import SourceError, source_open
from migration_app.sources.base import ERR_ONE_STATEMENT, ERR_TIMEOUT
from migration_app.tasks import backfill_segment_task, validate_task

PLANTED = "planted-token-value-0123456789"
pytestmark = pytest.mark.django_db


@pytest.fixture
def planted(monkeypatch, settings) -> Iterator[None]:
    monkeypatch.setenv("LIZZY_PLANTED_TOKEN", PLANTED)
    settings.TWILIO_AUTH_TOKEN = "planted-twilio-auth-token-abcdef"  # noqa: S105 - a test value
    secrets_forget()
    yield
    secrets_forget()


def query_mapping(query: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "q",
                "rule-action": "map-record-to-record",
                "source-query": query,
                "source-key": ["id"],
                "target-table-name": "Things",
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {
                            "target-attribute-name": "PK",
                            "attribute-type": "scalar",
                            "attribute-sub-type": "string",
                            "value": "T#${id}",
                        }
                    ],
                },
            }
        ]
    }


def refused(url: str, query: str) -> str:
    """The error a plan check with this source query gets (it must get one)."""
    with pytest.raises(ApplicationError) as caught:
        plan_check(mapping=query_mapping(query), source_url=url)
    return caught.value.message


# --- DuckDB: no files, no network, no extensions, locked ------------------------------------------------


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v VARCHAR)")
        connection.execute("INSERT INTO things SELECT i, CAST(i AS VARCHAR) FROM range(1, 61) t(i)")
    return f"duckdb:///{path}"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 AS id, content FROM read_text('/proc/self/environ')",
        "SELECT 1 AS id, CAST(content AS INTEGER) AS n FROM read_text('/proc/self/environ')",
        "SELECT 1 AS id, * FROM read_csv('/etc/passwd')",
        "SELECT 1 AS id, * FROM read_blob('/proc/self/environ')",
        "SELECT 1 AS id, * FROM 'https://example.com/data.csv'",
        "SELECT 1 AS id, * FROM read_parquet('s3://bucket/x.parquet')",
        "SELECT 1 AS id, * FROM glob('/*')",
    ],
)
def test_duckdb_queries_cannot_read_files_urls_or_the_environment(duckdb_url, planted, query):
    message = refused(duckdb_url, query)
    assert "disabled by configuration" in message
    assert PLANTED not in message
    assert "PATH=" not in message


@pytest.mark.parametrize(
    "tail",
    [
        "SET enable_external_access = true",
        "SET autoinstall_known_extensions = true",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "COPY things TO '{tmp}/copied.csv'",
    ],
)
def test_duckdb_runs_one_statement_so_nothing_can_be_switched_back_on(duckdb_url, tail, tmp_path):
    stacked = "SELECT * FROM things) AS src; " + tail.format(tmp=tmp_path) + "; SELECT * FROM (SELECT 1 AS id"  # noqa: S608 - the attack
    message = refused(duckdb_url, stacked)
    assert ERR_ONE_STATEMENT.format(count=3) in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source.duckdb"]
    with source_open(url=duckdb_url) as source:
        rows = source._fetch(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'autoinstall_known_extensions', 'autoload_known_extensions', "
            "'lock_configuration')",
            [],
        )
        settings = {row["name"]: row["value"] for row in rows}
        with pytest.raises(SourceError, match="locked"):
            source._execute("SET enable_external_access = true", [])
        with pytest.raises(SourceError, match="read-only"):
            source._execute("CREATE TABLE written (a INTEGER)", [])
    assert settings == {
        "enable_external_access": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "lock_configuration": "true",
    }


def test_duckdb_statement_timeout_interrupts_a_query_that_runs_on(duckdb_url, settings):
    settings.LIZZY_SOURCE_STATEMENT_TIMEOUT = 0.3
    with source_open(url=duckdb_url) as source, pytest.raises(SourceError) as caught:
        source._fetch("SELECT count(*) FROM range(100000000000) a, range(1000) b", [])
    assert ERR_TIMEOUT.format(seconds=0.3) in caught.value.message


# --- PostgreSQL: read-only transactions, one statement, timeouts ----------------------------------------


def _pg_tables(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


@pytest.fixture
def pg_url(postgres_source) -> str:
    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE things (id integer PRIMARY KEY, v text)")
        connection.execute("INSERT INTO things SELECT i, i::text FROM generate_series(1, 60) i")
    return postgres_source


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 AS id; CREATE TABLE stacked_a ()",
        "SELECT * FROM things) AS src; CREATE TABLE stacked_b (); SELECT * FROM (SELECT 1 AS id",
        "SELECT * FROM things) AS src LIMIT 0; CREATE TABLE stacked_c (); SELECT * FROM (SELECT 1 AS id",
    ],
)
def test_postgres_stacked_statements_are_refused_and_create_nothing(pg_url, query):
    message = refused(pg_url, query)
    assert "multiple commands" in message or "syntax error" in message
    assert _pg_tables(pg_url) == ["things"]


def test_postgres_session_is_read_only_even_after_a_query_turns_the_default_off(pg_url):
    with source_open(url=pg_url) as source:
        shown = source._fetch(
            "SELECT current_setting('default_transaction_read_only') AS d, "
            "current_setting('transaction_read_only') AS t, current_setting('statement_timeout') AS s",
            [],
        )[0]
        # a query switches the session default off; the next transaction must still be read-only
        source._fetch("SELECT set_config('default_transaction_read_only', 'off', false) AS off", [])
        with pytest.raises(SourceError, match="read-only transaction"):
            source._fetch("SELECT id FROM things FOR UPDATE", [])
        with pytest.raises(SourceError, match="read-only transaction"):
            source._execute("CREATE TABLE written ()", [])
    assert shown == {"d": "on", "t": "on", "s": "10min"}
    assert _pg_tables(pg_url) == ["things"]


def test_postgres_statement_timeout_cancels_a_long_query(pg_url, settings):
    settings.LIZZY_SOURCE_STATEMENT_TIMEOUT = 0.2
    with source_open(url=pg_url) as source:
        with pytest.raises(SourceError) as caught:
            source._fetch("SELECT pg_sleep(30) AS slept", [])
        assert ERR_TIMEOUT.format(seconds=0.2) in caught.value.message
        assert source._fetch("SELECT 1 AS one", []) == [{"one": 1}]  # the connection is still usable


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server or a black hole)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def test_postgres_connect_gives_up_on_a_server_that_never_answers(silent_server, settings):
    settings.LIZZY_SOURCE_CONNECT_TIMEOUT = 1
    with pytest.raises(SourceError, match="Cannot read the source database"):
        source_open(url=f"postgres://lizzy:planted-db-password@127.0.0.1:{silent_server}/crm")


# --- MySQL / MariaDB -------------------------------------------------------------------------------------


def _mysql_tables(url: str) -> list[str]:
    parsed = urlparse(url)
    connection = pymysql.connect(
        host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root", password=parsed.password or ""
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [parsed.path[1:]])
        names = [row[0] for row in cursor.fetchall()]
    connection.close()
    return names


@pytest.fixture
def my_url(mariadb_source) -> str:
    parsed = urlparse(mariadb_source)
    connection = pymysql.connect(
        host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root", database=parsed.path[1:]
    )
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE things (id int PRIMARY KEY, v varchar(10))")
        cursor.executemany("INSERT INTO things VALUES (%s, %s)", [(i, str(i)) for i in range(1, 61)])
    connection.commit()
    connection.close()
    return mariadb_source


def test_mysql_stacked_statements_are_refused_and_the_session_is_read_only(my_url):
    refused(my_url, "SELECT * FROM things) AS src; CREATE TABLE stacked (a int); SELECT * FROM (SELECT 1 AS id")
    with source_open(url=my_url) as source:
        with pytest.raises(SourceError, match="READ ONLY"):
            source._execute("CREATE TABLE written (a int)", [])
        with pytest.raises(SourceError, match="READ ONLY"):
            source._execute("INSERT INTO things VALUES (100, 'x')", [])
    assert _mysql_tables(my_url) == ["things"]


def test_mysql_statement_timeout_interrupts_a_long_query(my_url, settings):
    settings.LIZZY_SOURCE_STATEMENT_TIMEOUT = 0.5
    with source_open(url=my_url) as source:
        with pytest.raises(SourceError) as caught:
            source._fetch("SELECT a.id FROM things a, things b, things c, things d, things e ORDER BY rand()", [])
        assert ERR_TIMEOUT.format(seconds=0.5) in caught.value.message


def test_mysql_connect_gives_up_on_a_server_that_never_answers(silent_server, settings):
    settings.LIZZY_SOURCE_CONNECT_TIMEOUT = 1
    settings.LIZZY_SOURCE_STATEMENT_TIMEOUT = 1
    with pytest.raises(SourceError, match="Cannot read the source database"):
        source_open(url=f"mysql://root:planted-db-password@127.0.0.1:{silent_server}/crm")


# --- SQLite ------------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT)")
        connection.executemany("INSERT INTO things VALUES (?, ?)", [(i, str(i)) for i in range(1, 61)])
    return f"sqlite:///{path}"


def test_sqlite_runs_one_statement_and_writes_nothing(sqlite_url, tmp_path):
    refused(sqlite_url, "SELECT * FROM things) AS src; CREATE TABLE stacked (a); SELECT * FROM (SELECT 1 AS id")
    with source_open(url=sqlite_url) as source:
        with pytest.raises(SourceError, match="not authorized"):
            source._execute("CREATE TABLE written (a)", [])
        with pytest.raises(SourceError, match="not authorized"):
            source._execute(f"ATTACH DATABASE '{tmp_path}/attached.sqlite3' AS other", [])
        with pytest.raises(SourceError, match="not authorized"):
            source._execute("PRAGMA query_only = 0", [])
        assert source._fetch("PRAGMA query_only", []) == [{"query_only": 1}]
    assert not (tmp_path / "attached.sqlite3").exists()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["things"]


def test_sqlite_statement_timeout_interrupts_a_long_query(sqlite_url, settings):
    settings.LIZZY_SOURCE_STATEMENT_TIMEOUT = 0.3
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) AS m FROM n"
    with source_open(url=sqlite_url) as source:
        with pytest.raises(SourceError) as caught:
            source._fetch(endless, [])
        assert ERR_TIMEOUT.format(seconds=0.3) in caught.value.message
        assert source._fetch("SELECT count(*) AS c FROM things", []) == [{"c": 60}]


# --- secrets never reach the admin, the run, the task result or the log ----------------------------------


def test_source_errors_are_scrubbed_when_raised(planted):
    error = SourceError(f"Conversion Error: could not convert string '{PLANTED}' to INT32")
    assert PLANTED not in error.message
    assert PLANTED not in str(error)


def test_another_processes_environment_dump_is_scrubbed_whatever_its_names():
    dump = "DB_SERVER_ONLY_NAME=some-value-123\x00OTHER=hidden-456\x00HOME=/var/lib/postgresql\x00"
    scrubbed = secrets_scrub(f'invalid input syntax for type integer: "{dump}"')
    assert "some-value-123" not in scrubbed
    assert "hidden-456" not in scrubbed
    assert scrubbed.startswith("invalid input syntax for type integer")


@pytest.fixture
def leaky_plan(tmp_path, planted, dynamodb) -> MigrationPlan:
    """A plan whose 55th source row holds a secret value and whose query fails on it while paging."""
    path = tmp_path / "leaky.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v VARCHAR)")
        connection.execute("INSERT INTO things SELECT i, CAST(i AS VARCHAR) FROM range(1, 61) t(i)")
        connection.execute("UPDATE things SET v = ? WHERE id = 55", [PLANTED])
    return plan_save(
        name="leaky",
        source_url=f"duckdb:///{path}",
        mapping=query_mapping("SELECT id, CAST(v AS INTEGER) AS n FROM things"),
    )


def _product_log_lines(records: list[logging.LogRecord]) -> list[str]:
    """The records as the product's own handler writes them (its redacting filters, its formatter)."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    return [handler.format(record) for record in records if handler.filter(record)]


def test_a_failed_run_leaves_no_secret_in_the_run(leaky_plan):
    with plan_context(plan=leaky_plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)

    assert run.status == RunStatus.FAILED
    assert "Could not convert string" in run.last_error
    assert REPLACEMENT in run.last_error
    assert PLANTED not in run.last_error
    assert PLANTED not in json.dumps(run_progress(run=run), default=str)


def test_the_console_shows_a_failed_start_without_the_secret(leaky_plan, admin_client, caplog):
    with caplog.at_level(logging.DEBUG):
        response = admin_client.post(
            reverse("admin:migration_app_migrationplan_console", args=[leaky_plan.pk, "start"]),
            HTTP_ACCEPT="application/json",
        )
        page = admin_client.get(reverse("admin:migration_app_migrationplan_change", args=[leaky_plan.pk]))
    assert PLANTED not in response.content.decode()
    assert PLANTED not in page.content.decode()
    assert not [line for line in _product_log_lines(caplog.records) if PLANTED in line]


def test_a_failed_segment_tasks_result_and_log_carry_no_secret(leaky_plan, settings, caplog):
    with plan_context(plan=leaky_plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with caplog.at_level(logging.INFO):
        result = backfill_segment_task.apply(args=[run.segments.get().pk], task_id="leaky-segment", throw=False)
    assert result.failed()
    lines = _product_log_lines(caplog.records)
    assert [line for line in lines if "Could not convert string" in line]  # the worker log names the failure
    assert not [line for line in lines if PLANTED in line]
    assert "Could not convert string" in repr(result.result)
    assert PLANTED not in repr(result.result)
    assert PLANTED not in (result.traceback or "")


def test_a_failing_validation_tasks_result_carries_no_secret(tmp_path, planted, dynamodb, settings):
    path = tmp_path / "leaky.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v VARCHAR)")
        connection.execute("INSERT INTO things VALUES (1, ?)", [PLANTED])
    plan = MigrationPlan.objects.create(
        name="leaky-task",
        source_url=f"duckdb:///{path}",
        mapping=query_mapping("SELECT id, CAST(v AS INTEGER) AS n FROM things"),
        target_tables=["Things"],
    )
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # in one process (the distributed form's parts fail as tasks of their own, test_validation.py)
    result = validate_task.apply(args=[plan.pk], kwargs={"distributed": False}, task_id="leaky-validate", throw=False)
    assert result.failed()
    assert PLANTED not in repr(result.result)
    assert PLANTED not in (result.traceback or "")


# --- the plan's configuration: superusers only, audited ---------------------------------------------------


def test_an_operator_cannot_change_a_plans_source_or_query_and_a_superusers_change_is_audited(
    client, admin_client, admin_user, django_user_model, sqlite_url
):
    plan = MigrationPlan.objects.create(
        name="configured", source_url=sqlite_url, mapping=query_mapping("SELECT id FROM things")
    )
    operator = django_user_model.objects.create_user(username="op", password="pw-op-123456", is_staff=True)
    group = Group.objects.filter(name="operator").first()
    if group is None:
        from django.core.management import call_command

        call_command("ensure_roles")
        group = Group.objects.get(name="operator")
    operator.groups.add(group)
    client.force_login(operator)
    url = reverse("admin:migration_app_migrationplan_change", args=[plan.pk])
    evil = query_mapping("SELECT 1 AS id, content FROM read_text('/proc/self/environ')")

    # an operator posts a new source URL and a new query: neither is taken
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="source_url"' not in page.content.decode()
    assert 'name="mapping"' not in page.content.decode()
    client.post(
        url,
        {"name": "configured", "source_url": "duckdb:///evil.duckdb", "mapping": json.dumps(evil)},
    )
    plan.refresh_from_db()
    assert (plan.source_url, plan.mapping["rules"][0]["source-query"]) == (sqlite_url, "SELECT id FROM things")

    # a superuser may, and the admin log names who changed which fields
    form = admin_client.get(url).context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data |= {
        "source_url": sqlite_url + "?v=2",
        "mapping": json.dumps(plan.mapping),
        "target_tables": '["Things"]',
        "max_bad_rows": 0,
        "name": "configured",
    }
    response = admin_client.post(url, {k: v for k, v in data.items() if v is not None})
    assert response.status_code == 302, response.context["adminform"].form.errors
    plan.refresh_from_db()
    assert plan.source_url == sqlite_url + "?v=2"
    entry = LogEntry.objects.filter(object_id=str(plan.pk), user=admin_user).latest("action_time")
    assert "Source url" in entry.get_change_message() or "source_url" in entry.change_message
