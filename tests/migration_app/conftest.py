"""Fixtures of the migration tests: source databases built from DDL, backups in a temporary directory."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

DMS_DIR = Path(__file__).parent / "dms"


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
