"""Review of 502ac96: the run's row is locked (SELECT ... FOR UPDATE) before the totals UPDATE. A run_fail
racing the last unit's close: whichever commits first decides, and the close never overwrites a failure."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services.runs import run_fail, run_finish
from tests.migration_app.services.test_run_totals_race import _waiting_on_a_lock, two_units

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL's READ COMMITTED")

__all__ = ["two_units"]


def wait_for_a_lock_waiter(deadline_seconds: float = 10) -> None:
    deadline = time.monotonic() + deadline_seconds
    while _waiting_on_a_lock() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_run_fail_committed_while_the_close_waits_for_the_row_wins(two_units):
    # given a run whose units are all done, and a run_fail holding the run's row (its UPDATE, not committed)
    run, first, second = two_units
    Segment.objects.filter(pk__in=[first.pk, second.pk]).update(done=True, rows_read=5, items_written=5)
    holding, errors = threading.Event(), []

    def failing():
        try:
            with transaction.atomic():
                MigrationRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                    status=RunStatus.FAILED, last_error="boom"
                )
                holding.set()
                wait_for_a_lock_waiter()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=failing)
    thread.start()
    assert holding.wait(10)
    # when the last unit's end tries to close it
    finished = run_finish(run_id=run.pk)
    thread.join(20)
    # then the run stays failed (the close reads the committed status), with its totals
    assert not errors
    assert finished.status == RunStatus.FAILED
    assert (finished.rows_read, finished.last_error) == (10, "boom")
    # and a run_fail after a close changes nothing
    assert run_fail(run_id=run.pk, error="late").last_error == "boom"
