"""The cost ledger counts what every process writes, not only the web process (issue 16: a 75,000-item
migration showed 7 write units). ``migrate_to_dynamodb`` runs here as its own process, as on the command line,
against a real HTTP DynamoDB endpoint; the ledger is read from the database it shares with the console."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows
from tests.migration_app.kill import kill_during_write

ROOT = Path(__file__).resolve().parents[2]
ROWS = 300
BATCH_CALLS = ROWS // 25  # BatchWriteItem takes 25 items; the local endpoint reports >= 1 unit per call

pytestmark = pytest.mark.integration


@pytest.fixture
def command_line(tmp_path, sqlite_source, dynamodb_server_url):
    """(env, command, table): a control database, a source and a mapping for a separate process."""
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    table = f"Things-{uuid.uuid4().hex[:8]}"
    mapping_file = tmp_path / "things.json"
    mapping_file.write_text(json.dumps(things_mapping(table=table)))
    control = tmp_path / "control.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": f"sqlite:///{control}",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server_url,
        "LIZZY_BACKUP_DIR": str(tmp_path / "backups"),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    command = ["migrate_to_dynamodb", "--mapping", str(mapping_file), "--source", source, "--json"]
    return env, command, table, control


def ledger_writes(control: Path, table: str) -> float:
    with sqlite3.connect(control) as db:
        (units,) = db.execute(
            'SELECT coalesce(sum(write_units), 0) FROM lizzy_capacityusage WHERE "table" LIKE ?', (f"{table}%",)
        ).fetchone()
    return units


def test_a_migration_on_the_command_line_is_in_the_ledger_once_it_exits(command_line):
    env, command, table, control = command_line
    # given the production default: flush at most once a minute, and at exit
    env = {**env, "LIZZY_CAPACITY_FLUSH_SECONDS": "60"}
    # when a backfill runs in its own process, far shorter than a minute
    result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["rows_read"] == ROWS
    # then its writes are in the shared ledger (before: 0, they died with the process)
    assert ledger_writes(control, table) >= BATCH_CALLS


def test_a_migration_killed_mid_run_has_its_writes_so_far_in_the_ledger(command_line, tmp_path):
    env, command, table, control = command_line
    # given a flush after every call (so nothing depends on timing)
    env = {**env, "LIZZY_CAPACITY_FLUSH_SECONDS": "0"}
    marker = tmp_path / "blocked"
    # when it is killed (no atexit, no shutdown signal) in the middle of its fifth BatchWriteItem
    kill_during_write(command=command, env=env, marker=marker, ready=lambda: ledger_writes(control, table) >= 4)
    # then the four batches it wrote are counted (the calls before the hung one: some may end after it started)
    assert ledger_writes(control, table) >= 4
