"""Attacks on 7bdf4ee that found the promise kept (run one file at a time: see the review brief)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from lizzy import celery as lizzy_celery
from migration_app.models import RunStatus
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import drain_queue, things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40) NOT NULL, updated_at TIMESTAMP)"


def _mapping():
    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    return mapping


def _run(make_source, rows):
    url = make_source(DDL, {"things": rows})
    plan = plan_save(name="nul", source_url=url, mapping=_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    drain_queue([u.pk for u in run.segments.order_by("pk")])
    run.refresh_from_db()
    return plan, run


@pytest.mark.parametrize("engine", ["sqlite", "duckdb", "mariadb"])
def test_nul_keys_at_every_page_unit_and_validation_range_boundary(make_source, settings, dynamodb, engine):
    """43 keys, 42 with NULs (incl. "k05" < "k05\\0\\0" < "k05\\0a"), units of 7, ramped pages, validation
    ranges of 5: every checkpoint/cut/range bound is a $text key decoded and bound; run and validation clean."""
    settings.LIZZY_MIGRATION_UNIT_ROWS = 7
    settings.LIZZY_VALIDATION_RANGE_ROWS = 5
    keys = [f"k{n:02d}\x00{'x' * (n % 3)}" for n in range(40)] + ["k05", "k05\x00\x00", "k05\x00a"]
    rows = [{"id": k, "name": f"n{i}", "updated_at": "2025-01-01 00:00:00"} for i, k in enumerate(keys)]
    plan, run = _run(make_source, rows)
    assert (run.status, run.rows_read) == (RunStatus.SUCCEEDED, len(keys)), run.last_error[:500]
    assert run.segments.count() > 3
    assert plan_validate(plan=plan).clean


@pytest.mark.parametrize("engine", ["sqlite"])
def test_validation_reports_missing_extra_different_items_of_nul_keys(make_source, settings, dynamodb, engine):
    """Item keys in samples are JSON text (NUL as \\u0000): the report saves."""
    from lizzy.dynamodb.items import dynamodb_delete_item, dynamodb_get_item, dynamodb_put_item

    rows = [
        {"id": k, "name": f"n{i}", "updated_at": "2025-01-01 00:00:00"} for i, k in enumerate(["a\x00", "b", "c\x00d"])
    ]
    plan, run = _run(make_source, rows)
    assert run.status == RunStatus.SUCCEEDED
    dynamodb_delete_item(table="Things", key={"PK": "THING#a\x00"})
    item = dynamodb_get_item(table="Things", key={"PK": "THING#c\x00d"}, consistent=True)
    dynamodb_put_item(table="Things", item={**item, "name": "changed"})
    dynamodb_put_item(table="Things", item={"PK": "THING#zz\x00"})
    report = plan_validate(plan=plan)
    assert report.pk
    assert (report.missing, report.different, report.extra) == (1, 1, 1)


def test_a_connection_psycopg_knows_is_broken_is_closed_at_the_boundary_without_raising(postgres_url):
    """Backend terminated, a query failed (psycopg: BAD, transaction_status UNKNOWN): _idle does not raise,
    the connection is closed, the next query reconnects."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(Exception):  # noqa: B017, PT011, SIM117 - the cursor is the thing that raises
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    lizzy_celery.db_connections_before_task(sender=None)
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_copy_left_open_is_active_and_closed_at_the_boundary():
    """COPY ... TO STDOUT begun and abandoned (transaction_status ACTIVE): closed, no exception."""
    connection.ensure_connection()
    raw = connection.connection
    copy = raw.cursor().copy("COPY (SELECT generate_series(1, 100000)) TO STDOUT")
    copy.__enter__()
    assert raw.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
    lizzy_celery.db_connections_after_task(sender=None, state="SUCCESS")
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_warm_up_leaves_no_connect_timeout_in_settings_or_in_later_connections(settings):
    """The option is popped: settings.DATABASES (the same dict) and the next connection's params lack it."""
    from django.db import connections

    connections.close_all()
    lizzy_celery.db_warm_up()
    assert connection.connection is not None
    assert "connect_timeout" not in settings.DATABASES["default"]["OPTIONS"]
    assert "connect_timeout" not in connection.get_connection_params()
    connection.close()
    connection.ensure_connection()
    assert "connect_timeout" not in connection.connection.info.get_parameters()


def test_database_url_connect_timeout_reaches_options_and_is_kept(monkeypatch):
    """django-environ puts ?connect_timeout=7 in OPTIONS: the warm-up keeps the operator's value."""
    import environ

    config = environ.Env.db_url_config("postgres://u@h:5432/d?connect_timeout=7")
    assert config["OPTIONS"]["connect_timeout"] in (7, "7")
