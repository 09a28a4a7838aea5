"""Fixtures of the change-capture tests: a PostgreSQL source database of their own, slots dropped after; a
MariaDB/MySQL one for the binlog tests."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from migration_app.cdc import binlog
from tests.fixtures.services import unavailable

BINLOG_SERVER_ID_BASE = random.randrange(1_000_000_000, 4_000_000_000, 1_000_000)  # this test process's


@pytest.fixture(autouse=True)
def _test_slot_names(settings) -> None:
    settings.LIZZY_CDC_SLOT_PREFIX = "lizzy_test"
    settings.LIZZY_CDC_POLL_SECONDS = 0.05
    settings.LIZZY_CDC_SLOT_CREATE_TIMEOUT_SECONDS = 60  # other test runs' transactions on the server delay it
    # binlog readers are replicas of the server: test runs sharing one MariaDB must not share server_ids
    settings.LIZZY_CDC_BINLOG_SERVER_ID_BASE = BINLOG_SERVER_ID_BASE


def _admin_url(postgres_url: str) -> str:
    return (postgres_url.rsplit("/", 1)[0] + "/postgres").replace("postgres://", "postgresql://", 1)


def drop_slots_of(admin: psycopg.Connection, database: str) -> None:
    """Every replication slot of ``database`` (a leftover slot keeps the server's WAL forever)."""
    for _ in range(50):
        rows = admin.execute(
            "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", [database]
        ).fetchall()
        if not rows:
            return
        for slot, pid in rows:
            if pid:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            with contextlib.suppress(psycopg.Error):
                admin.execute("SELECT pg_drop_replication_slot(%s)", [slot])


@pytest.fixture
def cdc_source(postgres_url: str) -> Iterator[str]:
    """A fresh database ``lizzy_h15_cdc_<random>``; its slots and the database are dropped afterwards."""
    name = f"lizzy_h15_cdc_{uuid.uuid4().hex[:8]}"
    admin_url = _admin_url(postgres_url)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        level = admin.execute("SHOW wal_level").fetchone()[0]
        if level != "logical":
            pytest.skip(f"PostgreSQL runs with wal_level={level}; change data capture needs logical")
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            drop_slots_of(admin, name)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def slots_of(source_url: str) -> list[str]:
    database = source_url.rsplit("/", 1)[1]
    with psycopg.connect(source_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = %s ORDER BY 1", [database]
        ).fetchall()
    return [row[0] for row in rows]


def publications_of(source_url: str) -> list[str]:
    with psycopg.connect(source_url, autocommit=True) as connection:
        return [row[0] for row in connection.execute("SELECT pubname FROM pg_publication ORDER BY 1").fetchall()]


@pytest.fixture
def binlog_source(mysql_url: str) -> Iterator[str]:
    """A fresh MariaDB/MySQL database ``lizzy_cdc_binlog_<random>``, dropped afterwards; the server must write a
    row-based binlog (skipped without one, failed under LIZZY_REQUIRE_SERVICES=1: .ci/run turns it on)."""
    admin = binlog.source_connect(mysql_url)
    try:
        problems = binlog.server_problems(admin)
        if problems:
            unavailable("MariaDB/MySQL cannot be captured: " + "; ".join(problems))
        name = f"lizzy_cdc_binlog_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        yield f"{mysql_url.rsplit('/', 1)[0]}/{name}"
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()
