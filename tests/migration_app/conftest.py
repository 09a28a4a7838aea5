"""Fixtures of the migration tests: source databases built from DDL, backups in a temporary directory."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import psycopg
import pymysql
import pytest

DMS_DIR = Path(__file__).parent / "dms"


@pytest.fixture(autouse=True)
def _moto_scans_binary_keys(monkeypatch) -> None:
    """moto 5.2.5's parallel Scan hashes the partition key with ``value.encode()``, which a binary (B) key
    does not have; DynamoDB scans such tables in segments like any other. Hash the bytes themselves."""
    import hashlib

    from moto.dynamodb.models.dynamo_type import Item

    real = Item.is_within_segment

    def is_within_segment(self, segments):
        if segments != (None, None) and isinstance(self.hash_key.value, bytes):
            segment, total = segments
            return hashlib.md5(self.hash_key.value).digest()[0] % total == segment  # noqa: S324
        return real(self, segments)

    monkeypatch.setattr(Item, "is_within_segment", is_within_segment)


@pytest.fixture(autouse=True)
def _backups_in_tmp(settings, tmp_path: Path) -> None:
    settings.LIZZY_BACKUP_DIR = str(tmp_path / "backups")


@pytest.fixture
def dms_mapping() -> Callable[[str], dict]:
    return lambda name: json.loads((DMS_DIR / name).read_text())


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Callable[..., str]:
    """Build a SQLite source file from DDL and rows; returns its URL."""

    def build(ddl: str, rows: dict[str, list[dict]] | None = None, name: str = "source.sqlite3") -> str:
        path = tmp_path / name
        with sqlite3.connect(path) as connection:
            connection.executescript(ddl)
            for table, table_rows in (rows or {}).items():
                for row in table_rows:
                    columns = ", ".join(f'"{c}"' for c in row)
                    marks = ", ".join("?" for _ in row)
                    connection.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(row.values()))  # noqa: S608
        return f"sqlite:///{path}"

    return build


@pytest.fixture
def postgres_source(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database ``lizzy_i5_src_<random>`` on the test server, dropped afterwards."""
    name = f"lizzy_i5_src_{uuid.uuid4().hex[:8]}"
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    admin_url = admin_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_source(mysql_url: str) -> Iterator[str]:
    """A fresh MariaDB database ``lizzy_i12_src_<random>`` on the test server, dropped afterwards."""
    from urllib.parse import urlparse

    parsed = urlparse(mysql_url)
    name = f"lizzy_i12_src_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(
        host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root", password=parsed.password or ""
    )
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    netloc = parsed.netloc
    yield f"mysql://{netloc}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


ENGINES = ["sqlite", "postgres", "duckdb", "mariadb"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def make_source(request, tmp_path: Path, engine: str) -> Callable[..., str]:
    """Build a source of the ``engine`` parameter from DDL (one string, or a dict per engine) and rows."""

    def build(ddl: str | dict[str, str], rows: dict[str, list[dict]] | None = None) -> str:
        text = ddl[engine] if isinstance(ddl, dict) else ddl
        statements = [part.strip() for part in text.split(";") if part.strip()]
        rows = rows or {}
        if engine == "sqlite":
            path = tmp_path / "source.sqlite3"
            with sqlite3.connect(path) as connection:
                for statement in statements:
                    connection.execute(statement)
                _insert(connection, rows, "?", '"')
            return f"sqlite:///{path}"
        if engine == "duckdb":
            path = tmp_path / "source.duckdb"
            with duckdb.connect(str(path)) as connection:
                for statement in statements:
                    connection.execute(statement)
                _insert(connection, rows, "?", '"')
            return f"duckdb:///{path}"
        if engine == "postgres":
            url = request.getfixturevalue("postgres_source")
            with psycopg.connect(url) as connection:
                for statement in statements:
                    connection.execute(statement)
                with connection.cursor() as cursor:
                    _insert(cursor, rows, "%s", '"')
            return url
        url = request.getfixturevalue("mariadb_source")
        from urllib.parse import urlparse

        parsed = urlparse(url)
        connection = pymysql.connect(
            host=parsed.hostname,
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            database=parsed.path.lstrip("/"),
            autocommit=True,
        )
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            _insert(cursor, rows, "%s", "`")
        connection.close()
        return url

    return build


def _insert(target, rows: dict[str, list[dict]], mark: str, quote: str) -> None:
    for table, table_rows in rows.items():
        if not table_rows:
            continue
        columns = list(table_rows[0])
        names = ", ".join(f"{quote}{c}{quote}" for c in columns)
        sql = f"INSERT INTO {quote}{table}{quote} ({names}) VALUES ({', '.join(mark for _ in columns)})"  # noqa: S608
        target.executemany(sql, [[row[c] for c in columns] for row in table_rows])


NFL_DDL = """
CREATE TABLE nfl_data (
  Position varchar(5), player_number smallint(6), Name varchar(40), status varchar(10),
  stat1 varchar(10), stat1_val varchar(10), stat2 varchar(10), stat2_val varchar(10),
  stat3 varchar(10), stat3_val varchar(10), stat4 varchar(10), stat4_val varchar(10), team varchar(10)
);
CREATE TABLE sport_team (
  id mediumint(9) NOT NULL PRIMARY KEY, name varchar(30) NOT NULL, abbreviated_name varchar(10),
  home_field_id smallint(6), sport_type_name varchar(15) NOT NULL, sport_league_short_name varchar(10) NOT NULL,
  sport_division_short_name varchar(10)
);
"""

NFL_ROW = {
    "Position": "P",
    "player_number": 6,
    "Name": "Allen, Ryan",
    "status": "ACT",
    "stat1": "PUNTS",
    "stat1_val": "73",
    "stat2": "AVG",
    "stat2_val": "46",
    "stat3": "LNG",
    "stat3_val": "67",
    "stat4": "IN 20",
    "stat4_val": "31",
    "team": "NE",
}
SPORT_TEAM_ROW = {
    "id": 1,
    "name": "Indianapolis Colts",
    "abbreviated_name": "IND",
    "home_field_id": 53,
    "sport_type_name": "football",
    "sport_league_short_name": "NFL",
    "sport_division_short_name": "AFC South",
}


@pytest.fixture
def nfl_source(sqlite_source) -> str:
    return sqlite_source(NFL_DDL, {"nfl_data": [NFL_ROW], "sport_team": [SPORT_TEAM_ROW]})
