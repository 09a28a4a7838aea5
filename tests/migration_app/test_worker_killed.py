"""A worker killed in the middle of a backfill: the next one resumes from the checkpoint, validation clean."""

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


@pytest.mark.integration
def test_killed_backfill_resumes_from_its_checkpoint(tmp_path, sqlite_source, dynamodb_server_url):
    # given a 300-row source, a control database and a real HTTP DynamoDB endpoint shared by two processes
    source = sqlite_source(THINGS_DDL, {"things": things_rows(300)})
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
        "LIZZY_MIGRATION_LEASE_SECONDS": "2",  # the dead worker's lease: taken over 2 s after its last page
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    command = ["migrate_to_dynamodb", "--mapping", str(mapping_file), "--source", source, "--json"]
    marker = tmp_path / "blocked"

    def checkpoint():
        with sqlite3.connect(control) as db:
            return db.execute("SELECT rows_read, last_key, done, lease_owner FROM migration_app_segment").fetchall()

    # when the first worker is killed while writing its fifth call (pages of 50 rows, 2 calls each), once the
    # pages DynamoDB accepted before that call are checkpointed (later calls may be in flight: the pipeline)
    kill_during_write(command=command, env=env, marker=marker, ready=lambda: checkpoint()[0][0] >= 50)
    ((rows_read, last_key, done, owner),) = checkpoint()
    assert rows_read in (50, 100)  # a checkpoint never passes the page of the hung call (the 3rd or the 2nd)
    assert (last_key, done) == (f"[{rows_read}]", 0)
    assert owner  # still leased by the dead worker

    # then a new worker takes the unit over once the lease expires, resumes from row 101, validation clean
    result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["validation"] == {**summary["validation"], "missing": 0, "extra": 0, "different": 0}
    assert summary["rows_read"] == 300
    with sqlite3.connect(control) as db:
        assert db.execute("SELECT attempts, done FROM migration_app_segment").fetchall() == [(2, 1)]
        assert db.execute("SELECT count(*), max(status) FROM migration_app_migrationrun").fetchone() == (1, "succeeded")
