"""A real ``celery worker`` (prefork, one child) with two probe tasks that say which database connection they
found: ``probe`` appends one JSON line to LIZZY_TEST_PROBE_FILE (the pool process, whether a connection was
open when the task started, and the PostgreSQL backend that served it); ``boom`` does the same, then raises.

Usage: python -m tests.faults.db_probe_worker QUEUE
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
django.setup()

from django.db import connection  # noqa: E402

from lizzy.celery import app  # noqa: E402


def _record(name: str) -> None:
    connected = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    with open(os.environ["LIZZY_TEST_PROBE_FILE"], "a") as out:
        out.write(json.dumps({"task": name, "process": os.getpid(), "connected": connected, "backend": backend}) + "\n")


@app.task(name="tests.db_probe", ignore_result=True)
def probe() -> None:
    _record("probe")


@app.task(name="tests.db_boom", ignore_result=True)
def boom() -> None:
    _record("boom")
    raise RuntimeError("the probe task failed on purpose")


if __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "--pool",
            "prefork",
            "-c",
            "1",
            "-Q",
            sys.argv[1],
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ]
    )
