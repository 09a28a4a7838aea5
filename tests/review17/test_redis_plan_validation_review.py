"""Issue 17 review: the django-redis cache plan validated by another process (a resumed run, validate_migration)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis as redis_py

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "migration_app" / "plans" / "django_redis_cache" / "mapping.json"


@pytest.fixture
def redis_db(redis_url):
    client = redis_py.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.mark.integration
def test_an_unchanged_pickled_set_validates_clean_from_another_process(
    tmp_path, redis_url, redis_db, dynamodb_server_url
):
    # given a django-redis pickle cache holding a set of strings (as django-redis's PickleSerializer stores it)
    redis_db.set(":1:tags", pickle.dumps({f"tag-{index}" for index in range(20)}, pickle.HIGHEST_PROTOCOL))
    # (the subprocesses' own default cache is not on this Redis: the plan's SCAN MATCH :1:* would copy it too)
    env = {
        **{name: value for name, value in os.environ.items() if name != "REDIS_URL"},
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'control.sqlite3'}",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server_url,
        "LIZZY_ENV": f"v{uuid.uuid4().hex[:8]}",
        "LIZZY_BACKUP_DIR": str(tmp_path / "backups"),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    source = f"{redis_url}?values=django-redis&serializer=django_redis.serializers.pickle.PickleSerializer"
    # when one process copies it (its own validation is clean) ...
    copy = subprocess.run(
        [sys.executable, "manage.py", "migrate_to_dynamodb", "--mapping", str(PLAN), "--source", source, "--json"],
        cwd=ROOT,
        env={**env, "PYTHONHASHSEED": "1"},
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr[-2000:]
    plan = json.loads(copy.stdout.strip().splitlines()[-1])["plan"]
    # ... and another process validates (as after a resumed run, or `validate_migration`), nothing having changed
    check = subprocess.run(
        [sys.executable, "manage.py", "validate_migration", plan, "--json"],
        cwd=ROOT,
        env={**env, "PYTHONHASHSEED": "2"},
        capture_output=True,
        text=True,
    )
    # then the validation is clean: the value is the same set; only its pickle's member order (string hashes,
    # randomized per process) differs
    summary = json.loads(check.stdout.strip().splitlines()[-1])["validation"]
    assert summary["different"] == 0, summary
    assert check.returncode == 0
