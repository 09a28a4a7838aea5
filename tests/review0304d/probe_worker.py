"""A real ``celery worker`` (prefork, one child unless LIZZY_TEST_POOL says otherwise) with probe tasks for the
review of bb512ec. Each probe appends one JSON line to LIZZY_TEST_PROBE_FILE.

Usage: python -m tests.review0304d.probe_worker QUEUE
"""

import contextlib
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
django.setup()

from django.db import connection  # noqa: E402

from lizzy.celery import app  # noqa: E402

if os.environ.get("LIZZY_TEST_NO_WARM_UP"):  # the control: the worker as it was before bb512ec's warm-up
    from celery.signals import worker_init

    worker_init.disconnect(dispatch_uid="lizzy.db_warm_up_connect")


def _out(**line: object) -> None:
    with open(os.environ["LIZZY_TEST_PROBE_FILE"], "a") as out:
        out.write(json.dumps({"process": os.getpid(), **line}) + "\n")


@app.task(name="r0304d.nodb", ignore_result=True)
def nodb() -> None:
    """Touches no database at all."""
    _out(task="nodb")


@app.task(name="r0304d.probe", ignore_result=True)
def probe() -> None:
    connected = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), now() = statement_timestamp()")
        backend, own_transaction = cursor.fetchone()
    _out(task="probe", connected=connected, backend=backend, in_transaction=not own_transaction)


@app.task(name="r0304d.begin_and_return", ignore_result=True)
def begin_and_return() -> None:
    """Succeeds, leaving the session inside a transaction Django does not know about."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    _out(task="begin_and_return", backend=backend)


@app.task(name="r0304d.write", ignore_result=True)
def write(name: str) -> None:
    """An autocommit INSERT, as any ORM save outside atomic()."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO r0304d_rows (name) VALUES (%s)", [name])
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    _out(task="write", name=name, backend=backend)


@app.task(name="r0304d.aborted_and_return", ignore_result=True)
def aborted_and_return() -> None:
    """Succeeds, leaving the session in a failed transaction (a DataError caught, which Django's
    errors_occurred does not flag)."""
    from django.db import DataError

    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        with contextlib.suppress(DataError):
            cursor.execute("SELECT 1/0")
    _out(task="aborted_and_return")


@app.task(name="r0304d.retry", bind=True, ignore_result=True, max_retries=1, default_retry_delay=0)
def retry(self) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    _out(task="retry", backend=backend, retries=self.request.retries)
    if not self.request.retries:
        raise self.retry()


if __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "--pool",
            os.environ.get("LIZZY_TEST_POOL", "prefork"),
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
