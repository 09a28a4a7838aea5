"""Work units and leases: units cut by keyset probes, one runner per unit, fenced checkpoints, takeovers,
bounded retries, and resume of a failed run with every row written exactly once."""

import threading
from collections import Counter

import pytest
from botocore.exceptions import ReadTimeoutError
from django.db import connections
from django.utils import timezone

from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import (
    PIPELINE_CHUNKS_PER_WRITER,
    LeaseLost,
    UnitLeased,
    run_create,
    run_execute,
    run_reopen,
    segment_backfill,
    unit_lease,
)
from migration_app.services.validation import plan_validate
from migration_app.sources.base import SqlSource
from migration_app.tasks import backfill_segment_task
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

ROWS = 230


@pytest.fixture
def things_plan(dynamodb, sqlite_source, settings):
    settings.LIZZY_MIGRATION_UNIT_ROWS = 50
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def _new_run(plan) -> MigrationRun:
    with plan_context(plan=plan) as context:
        return run_create(context=context)


def _execute(run) -> MigrationRun:
    with plan_context(plan=run.plan) as context:
        return run_execute(run=run, context=context)


class Writes:
    """Every item key a BatchWriteItem call actually sent to the endpoint (an independent ledger)."""

    def __init__(self, fail_calls=(), error=None):
        self.keys = Counter()
        self.calls = 0
        self.fail_calls = set(fail_calls)
        self.error = error or (lambda op: client_error("InternalServerError", "boom", op))
        self.lock = threading.Lock()
        self.after_call = None
        self.before_call = None

    def __call__(self, operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        with self.lock:
            self.calls += 1
            number = self.calls
        if self.before_call:
            self.before_call(number)
        if number in self.fail_calls or "all" in self.fail_calls:
            raise self.error(operation)
        response = send(params)
        ((_table, requests),) = params["RequestItems"].items()
        with self.lock:
            self.keys.update(request["PutRequest"]["Item"]["PK"]["S"] for request in requests)
        if self.after_call:
            self.after_call(number)
        return response


@pytest.mark.django_db
def test_units_are_cut_by_keyset_probes_as_they_are_taken(things_plan):
    run = _execute(_new_run(things_plan))

    units = list(run.segments.order_by("index").values_list("lower_key", "upper_key", "rows_read", "done"))
    assert units == [
        (None, [50], 50, True),
        ([50], [100], 50, True),
        ([100], [150], 50, True),
        ([150], [200], 50, True),
        ([200], None, 30, True),
    ]
    assert run.status == RunStatus.SUCCEEDED
    assert run.rows_read == ROWS


@pytest.mark.django_db(transaction=True)
def test_two_runners_on_one_plan_read_each_row_once(things_plan):
    # given one run and two runners (threads with their own connections) started on it at once
    run = _new_run(things_plan)
    writes = Writes()
    results, errors = [], []

    def runner():
        try:
            results.append(_execute(MigrationRun.objects.get(pk=run.pk)).status)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    # when both work until the run is done
    with fault_injection(writes):
        threads = [threading.Thread(target=runner) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    # then every row was read once and written once, and both runners saw the run succeed
    assert not errors
    assert results == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    run.refresh_from_db()
    assert run.rows_read == ROWS
    assert sum(run.segments.values_list("rows_read", flat=True)) == ROWS
    assert len(writes.keys) == ROWS
    assert set(writes.keys.values()) == {1}
    assert plan_validate(plan=things_plan).clean


@pytest.mark.django_db
def test_redelivered_unit_is_refused_while_leased(things_plan):
    # given a unit another runner holds
    run = _new_run(things_plan)
    unit = run.segments.get()
    unit_lease(segment_id=unit.pk, owner="worker-a")
    writes = Writes()

    # when its message is delivered again (Celery redelivery, a catch-up, a second invocation)
    with fault_injection(writes):
        backfill_segment_task.delay(unit.pk)
        with pytest.raises(UnitLeased):
            segment_backfill(segment_id=unit.pk)

    # then nothing was read or written, and the lease is still worker-a's
    unit.refresh_from_db()
    assert writes.calls == 0
    assert unit.rows_read == 0
    assert unit.lease_owner == "worker-a"
    assert unit.attempts == 1


@pytest.mark.django_db
def test_runner_that_lost_its_lease_stops_writing(things_plan, settings):
    # given a runner whose lease is taken over while its second page is being written
    settings.LIZZY_MIGRATION_UNIT_ROWS = 1000
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1  # the hook runs in this thread, on this test's connection
    run = _new_run(things_plan)
    unit = run.segments.get()
    writes = Writes()

    def take_over(number):
        if number == 4:  # pages of 50 rows, BatchWriteItem calls of 25: the second page's last call
            Segment.objects.filter(pk=unit.pk).update(
                fence=unit.fence + 100, lease_owner="worker-b", lease_expires_at=timezone.now() + timezone.timedelta(60)
            )

    writes.after_call = take_over

    # when it goes on
    with fault_injection(writes), pytest.raises(LeaseLost):
        segment_backfill(segment_id=unit.pk)

    # then it wrote no checkpoint after losing the lease and no further page
    unit.refresh_from_db()
    assert writes.calls == 4
    assert unit.rows_read == 50
    assert unit.last_key == [50]
    assert unit.lease_owner == "worker-b"


@pytest.mark.django_db
def test_a_unit_reads_its_next_page_while_the_previous_pages_writes_are_in_flight(things_plan, settings, monkeypatch):
    # given a unit of 230 rows in pages of 50, whose first BatchWriteItem call waits until the source has
    # handed out the second page (a serial loop would read page 2 only after page 1 is written: 5 s lost)
    settings.LIZZY_MIGRATION_UNIT_ROWS = 1000
    second_page_read = threading.Event()
    pages = SqlSource.pages

    def watched(self, *args, **kwargs):
        for number, page in enumerate(pages(self, *args, **kwargs), start=1):
            if number == 2:
                second_page_read.set()
            yield page

    monkeypatch.setattr(SqlSource, "pages", watched)
    writes = Writes()
    overlapped = []
    writes.before_call = lambda number: number == 1 and overlapped.append(second_page_read.wait(5))
    run = _new_run(things_plan)

    # when it runs
    with fault_injection(writes):
        unit = segment_backfill(segment_id=run.segments.get().pk)

    # then page 2 was read while page 1's write was in flight, and every row was written once
    assert overlapped == [True]
    assert (unit.done, unit.rows_read, unit.last_key) == (True, ROWS, [ROWS])
    assert len(writes.keys) == ROWS
    assert set(writes.keys.values()) == {1}


@pytest.mark.django_db
def test_a_pipelined_runner_that_lost_its_lease_stops_sending_and_checkpointing(things_plan, settings):
    # given pages of 25 rows (one BatchWriteItem call each, 10 in all), 4 calls in flight at a time, and a
    # runner whose lease is taken over right after its first checkpoint, with later pages' calls in flight
    settings.LIZZY_MIGRATION_UNIT_ROWS = 1000
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 25
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    run = _new_run(things_plan)
    unit = run.segments.get()
    writes = Writes()
    at_takeover = []

    def take_over(_rows):
        if not at_takeover:
            Segment.objects.filter(pk=unit.pk).update(
                fence=unit.fence + 100, lease_owner="worker-b", lease_expires_at=timezone.now() + timezone.timedelta(60)
            )
            at_takeover.append(writes.calls)

    # when it goes on
    with fault_injection(writes), pytest.raises(LeaseLost):
        segment_backfill(segment_id=unit.pk, on_rows=take_over)
    sent = writes.calls

    # then no checkpoint after the takeover, nothing sent after it returned, and of the pages not sent when the
    # lease was lost none but those already queued (2 a writer thread) went out: the last pages never did
    unit.refresh_from_db()
    assert (unit.rows_read, unit.last_key, unit.lease_owner) == (25, [25], "worker-b")
    assert sent - at_takeover[0] <= PIPELINE_CHUNKS_PER_WRITER * 4
    assert sent < 10
    assert writes.calls == sent


@pytest.mark.django_db
def test_expired_lease_is_taken_over_and_the_run_validates_clean(things_plan):
    # given a unit whose runner died after 2 pages (its lease expired, its checkpoint kept)
    run = _new_run(things_plan)
    unit = run.segments.get()
    unit_lease(segment_id=unit.pk, owner="dead-worker")
    Segment.objects.filter(pk=unit.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))

    # when another runner works on the run
    run = _execute(run)

    # then it took the unit over and the run ends clean
    unit.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert unit.attempts == 2
    assert run.rows_read == ROWS
    assert plan_validate(plan=things_plan).clean


@pytest.mark.django_db
def test_failed_run_resumes_and_every_row_is_written_once(things_plan, settings):
    settings.LIZZY_MIGRATION_UNIT_RETRIES = 0
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1  # the failing call is the page's first: none of it is sent
    run = _new_run(things_plan)
    writes = Writes(fail_calls={5})  # 25 items a call: the third unit's first page

    with fault_injection(writes):
        failed = _execute(run)
        assert failed.status == RunStatus.FAILED
        assert "InternalServerError" in failed.last_error
        assert failed.rows_read == 100

        resumed = _execute(run_reopen(run=failed))

    assert resumed.status == RunStatus.SUCCEEDED
    assert resumed.rows_read == ROWS
    assert len(writes.keys) == ROWS
    assert set(writes.keys.values()) == {1}
    assert plan_validate(plan=things_plan).clean


@pytest.mark.django_db
def test_transient_errors_are_retried_per_unit_with_a_bound(things_plan, settings):
    def timeout(_operation):
        return ReadTimeoutError(endpoint_url="http://dynamodb.test")

    # a timeout on two writes: retried from the checkpoint, counted on the unit
    with fault_injection(Writes(fail_calls={2, 3}, error=timeout)):
        run = _execute(_new_run(things_plan))
    assert run.status == RunStatus.SUCCEEDED
    first = run.segments.get(index=0)
    assert first.retries == 2
    assert "ReadTimeoutError" in first.last_error
    assert run.rows_read == ROWS
    assert plan_validate(plan=things_plan).clean

    # an endpoint that keeps timing out: the run fails once the budget is spent, saying so
    settings.LIZZY_MIGRATION_UNIT_RETRIES = 2
    MigrationRun.objects.all().delete()
    with fault_injection(Writes(fail_calls={"all"}, error=timeout)):
        run = _execute(_new_run(things_plan))
    assert run.status == RunStatus.FAILED
    assert "still failing after 2 retries" in run.last_error
    assert "unit things:things[0]" in run.last_error
