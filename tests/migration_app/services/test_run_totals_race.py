"""Two units finishing at once: the run's totals and its close come from a view taken after the other unit's
totals update committed (PostgreSQL, READ COMMITTED: an UPDATE's subqueries read the snapshot its statement
started with, even when it then waits for the row lock another unit's update holds)."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_finish
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the race is PostgreSQL's READ COMMITTED")


def _waiting_on_a_lock() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def two_units(dynamodb, sqlite_source):
    plan = plan_save(
        name="things", source_url=sqlite_source(THINGS_DDL, {"things": things_rows(10)}), mapping=things_mapping()
    )
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    first = run.segments.get()
    second = Segment.objects.create(run=run, entity=first.entity, index=first.index + 1)
    return run, first, second


@pytest.mark.django_db(transaction=True)
def test_the_last_unit_to_finish_counts_every_unit_and_closes_the_run(two_units):
    # given a run of two units: the first done, the second finishing in another runner right now
    run, first, second = two_units
    Segment.objects.filter(pk=first.pk).update(done=True, rows_read=70, items_written=70)
    holding, committed, errors = threading.Event(), threading.Event(), []

    def other_unit():
        # the other unit: its totals UPDATE holds the run's row while its unit's counters commit
        try:
            with transaction.atomic():
                MigrationRun.objects.select_for_update().get(pk=run.pk)
                holding.set()
                deadline = time.monotonic() + 10
                while _waiting_on_a_lock() < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                Segment.objects.filter(pk=second.pk).update(done=True, rows_read=30, items_written=30)
            committed.set()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_unit)
    thread.start()
    assert holding.wait(10)

    # when this unit's end closes the run while the other's update holds the row
    finished = run_finish(run_id=run.pk)
    thread.join(20)

    # then the run counts both units and is closed: nothing the other unit committed first is missed
    assert not errors
    assert committed.is_set()
    assert (finished.rows_read, finished.items_written) == (100, 100)
    assert finished.status == RunStatus.SUCCEEDED
