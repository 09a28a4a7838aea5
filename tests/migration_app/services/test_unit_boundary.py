"""A unit boundary's control-database statements (issue 14): the lease taken in two statements without a
transaction, refused when another runner's take lands between them; the run's totals and its close in one
UPDATE; no result stored for a unit task that succeeded (a failure's is kept)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import (
    UnitLeased,
    run_create,
    run_finish,
    run_pause,
    segment_backfill,
    segment_run,
    unit_lease,
)
from migration_app.tasks import backfill_segment_task
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

ROWS = 230  # units of 50 rows (the test settings' page size too): 5 units, the last of 30 rows


@pytest.fixture
def run(db, dynamodb, sqlite_source, settings) -> MigrationRun:
    settings.LIZZY_MIGRATION_UNIT_ROWS = 50
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        return run_create(context=context)


def _statements(queries) -> list[str]:
    """Each statement as its verb and table; a savepoint (BEGIN or COMMIT outside the test's transaction) as
    its verb."""
    out = []
    for query in queries:
        sql = query["sql"]
        out.append(sql.rsplit(" ", 1)[0] if "SAVEPOINT" in sql else sql.split('"')[0].strip() + " " + sql.split('"')[1])
    return out


def test_the_control_database_statements_of_a_one_page_unit_and_of_the_unit_cut_ahead(run):
    # given the run's first unit (open-ended: it is cut, and the unit after it too) and that next unit
    queued = []
    unit = run.segments.get()

    # when each runs as a Celery task runs it
    with CaptureQueriesContext(connection) as first:
        segment_run(segment_id=unit.pk, on_unit=queued.append)
    with CaptureQueriesContext(connection) as second:
        segment_run(segment_id=queued[0].pk, on_unit=queued.append)

    # then: lease (UPDATE, then the unit read with its run and plan), the run to running (first unit only),
    # the cut (UPDATE this unit, INSERT the unit cut ahead and the open-ended rest, in one transaction), one
    # checkpoint a page (the first page's fencing check is the lease's own UPDATE), release as done, the unit
    # read back, the run's row locked (where the database has row locks: test_run_totals_race.py says why)
    # and its totals and close in one UPDATE. The unit cut ahead has no cut of its own: lease, page, end.
    # Before: 28 and 27 (the lease in a transaction with a second read, the unit read three more times, the
    # totals as a SELECT SUM and an UPDATE twice, a status check, the run read back, the next unit's run
    # looked up); then 11 and 10 (every unit cut by its own runner). The cut reads the run's live leases first
    # (how many runners share the rows left: ``_guided_rows``), one statement an open-ended unit.
    segment, run_, plan = "migration_app_segment", "migration_app_migrationrun", "migration_app_migrationplan"
    lease = [f"UPDATE {segment}", f"SELECT {segment}"]
    cut = [f"SELECT {segment}", "SAVEPOINT", f"UPDATE {segment}", f"INSERT INTO {segment}", "RELEASE SAVEPOINT"]
    totals = [f"UPDATE {run_}"]
    if connection.features.has_select_for_update:
        totals = ["SAVEPOINT", f"SELECT {run_}", *totals, "RELEASE SAVEPOINT"]
    end = [f"UPDATE {segment}", f"UPDATE {segment}", f"SELECT {segment}", *totals]
    assert _statements(first.captured_queries) == [*lease, f"UPDATE {run_}", *cut, *end]
    assert _statements(second.captured_queries) == [*lease, *end]
    assert plan in first.captured_queries[1]["sql"]  # the unit's read joins its run and plan
    assert [(unit.index, unit.open_ended) for unit in queued] == [(1, False), (2, True)]
    assert Segment.objects.get(index=0).rows_read == 50
    assert Segment.objects.get(index=1).rows_read == 50


@pytest.mark.parametrize(
    ("rows", "bounds"),
    [
        # the rest after the cut ahead: the open-ended unit, itself cut (and one ahead) when taken
        (230, [(None, [50]), ([50], [100]), ([100], [150]), ([150], [200]), ([200], None)]),
        # no row after the cut ahead's range: the unit cut ahead goes to the end, no open-ended unit is left
        (80, [(None, [50]), ([50], None)]),
        (100, [(None, [50]), ([50], None)]),
        (101, [(None, [50]), ([50], [100]), ([100], None)]),
        (50, [(None, None)]),
    ],
)
def test_units_cut_ahead_cover_every_row_once(db, dynamodb, sqlite_source, settings, rows, bounds):
    # given a table of ``rows`` rows and units of 50
    settings.LIZZY_MIGRATION_UNIT_ROWS = 50
    source = sqlite_source(THINGS_DDL, {"things": things_rows(rows)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)

    # when the units run as queued
    queue = [run.segments.get().pk]
    while queue:
        segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))

    # then the units tile the key range, each row is read once, and the last unit closed the run
    units = list(run.segments.order_by("index").values_list("lower_key", "upper_key", "open_ended", "done"))
    assert units == [(lower, upper, False, True) for lower, upper in bounds]
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, rows, rows)


def test_the_run_totals_follow_each_unit_and_the_last_unit_closes_the_run(run):
    queue = [run.segments.get().pk]
    totals = []
    while queue:
        segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))
        run.refresh_from_db()
        totals.append((run.status, run.rows_read, run.items_written, run.finished_at is not None))

    assert totals == [
        (RunStatus.RUNNING, 50, 50, False),
        (RunStatus.RUNNING, 100, 100, False),
        (RunStatus.RUNNING, 150, 150, False),
        (RunStatus.RUNNING, 200, 200, False),
        (RunStatus.SUCCEEDED, ROWS, ROWS, True),
    ]
    assert run.bytes_written == sum(Segment.objects.filter(run=run).values_list("bytes_written", flat=True)) > 0


def test_finishing_a_paused_run_whose_units_are_done_updates_its_totals_and_leaves_it_paused(run):
    segment_backfill(segment_id=run.segments.get().pk)  # the first unit: 50 rows
    run_pause(run=run)
    Segment.objects.filter(run=run).update(done=True)

    finished = run_finish(run_id=run.pk)

    assert (finished.status, finished.rows_read, finished.finished_at) == (RunStatus.PAUSED, 50, None)


def test_a_stopped_runs_unit_is_returned_without_a_lease(run):
    unit = run.segments.get()
    run_pause(run=run)

    returned = segment_backfill(segment_id=unit.pk)

    unit.refresh_from_db()
    assert (returned.pk, returned.done) == (unit.pk, False)
    assert (unit.fence, unit.attempts, unit.lease_owner, unit.lease_expires_at) == (0, 0, "", None)


def test_a_runner_never_takes_a_lease_it_already_holds_under_the_same_name(run):
    # the read after the take checks the owner *and* this take's expiry: the same runner name's earlier
    # lease is not mistaken for a new one
    unit = run.segments.get()
    unit_lease(segment_id=unit.pk, owner="worker-a")

    with pytest.raises(UnitLeased, match="leased by worker-a"):
        unit_lease(segment_id=unit.pk, owner="worker-a")

    unit.refresh_from_db()
    assert (unit.fence, unit.attempts) == (1, 1)


def test_a_takeover_between_the_lease_update_and_the_read_is_refused_and_nothing_is_written(run):
    # given another runner whose take lands right after this runner's lease UPDATE, before its read
    unit = run.segments.get()
    calls = []

    def takeover(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('UPDATE "migration_app_segment" SET "fence"') and not calls:
            calls.append(sql)
            Segment.objects.filter(pk=unit.pk).update(
                fence=unit.fence + 2, lease_owner="worker-b", lease_expires_at=timezone.now() + timezone.timedelta(60)
            )
        return result

    writes = []

    def hook(operation, params, send):
        writes.append(operation)
        return send(params)

    # when this runner goes on
    with fault_injection(hook), connection.execute_wrapper(takeover), pytest.raises(UnitLeased, match="worker-b"):
        segment_backfill(segment_id=unit.pk)

    # then it saw the other runner's lease in its read and wrote nothing: no cut, no checkpoint, no item
    unit.refresh_from_db()
    assert calls
    assert "BatchWriteItem" not in writes
    assert (unit.lease_owner, unit.fence, unit.rows_read, unit.open_ended) == ("worker-b", 2, 0, True)
    assert Segment.objects.filter(run=run).count() == 1


def test_a_unit_task_stores_no_result_when_it_succeeds_and_its_failure_when_it_fails(run, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(backfill_segment_task, "store_eager_result", True)  # as a worker stores results

    done = backfill_segment_task.apply(args=[run.segments.get().pk], task_id="unit-ok", throw=False)
    assert done.successful()
    assert not TaskResult.objects.filter(task_id="unit-ok").exists()

    def failing(operation, params, send):
        if operation == "BatchWriteItem":
            raise client_error("InternalServerError", "boom", operation)
        return send(params)

    settings.LIZZY_MIGRATION_UNIT_RETRIES = 0
    with fault_injection(failing):
        failed = backfill_segment_task.apply(args=[Segment.objects.get(index=1).pk], task_id="unit-bad", throw=False)
    assert failed.failed()
    stored = TaskResult.objects.get(task_id="unit-bad")
    assert stored.status == "FAILURE"
    assert "InternalServerError" in stored.result
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
