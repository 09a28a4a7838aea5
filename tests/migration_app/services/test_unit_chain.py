"""Units one after another in one task (``segment_run(chain_seconds=...)``, issue 14): the next unit is taken
and its first page sent while the unit before drains, each row is still written once, and whatever goes
wrong with the unit taken ahead leaves it to its own message, never to a lost lease or a lost row."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lizzy.dynamodb import DynamoDBUnavailable
from migration_app.models import MigrationRun, RunStatus, Segment
from migration_app.services import runs
from migration_app.services.runs import RunFailed, run_cancel, segment_run
from migration_app.sources.base import SourceError
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import drain_queue, things_rows
from tests.review_chain.helpers import one_entity_run


@pytest.fixture
def sent(dynamodb):
    """The PK of every item each BatchWriteItem call carried, in call order (every thread)."""
    keys: list[str] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            keys.extend(request["PutRequest"]["Item"]["PK"]["S"] for request in requests)
        return send(params)

    with fault_injection(hook):
        yield keys


def _pages_and_checkpoints(monkeypatch) -> list[tuple[str, int]]:
    """Every page handed over and every checkpoint written, ("page" | "checkpoint", unit id), in order."""
    events: list[tuple[str, int]] = []
    write, checkpoint = runs._UnitPipeline.write, runs._UnitPipeline._checkpoint

    def recorded_write(self, rows, last_key):
        events.append(("page", self.lease.segment_id))
        return write(self, rows, last_key)

    def recorded_checkpoint(self, rows, last_key, outcome):
        events.append(("checkpoint", self.lease.segment_id))
        return checkpoint(self, rows, last_key, outcome)

    monkeypatch.setattr(runs._UnitPipeline, "write", recorded_write)
    monkeypatch.setattr(runs._UnitPipeline, "_checkpoint", recorded_checkpoint)
    return events


@pytest.mark.parametrize("rows", [230, 101, 100, 80, 50, 1])
def test_one_task_chains_every_unit_and_writes_each_row_once(db, sqlite_source, settings, sent, rows):
    # given a run of ``rows`` rows in units of 50
    run = one_entity_run(sqlite_source, settings, rows)
    queue: list[int] = []

    # when its first unit's task runs, then every message its cuts queued (each finds its unit done)
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)
    run.refresh_from_db()
    first_task = (run.status, run.rows_read)
    drain_queue(queue)

    # then the first task did it all: every unit once (one lease take each), every row sent once
    assert first_task == (RunStatus.SUCCEEDED, rows)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, rows, rows)
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, rows + 1))
    assert set(run.segments.values_list("done", "attempts", "lease_owner")) == {(True, 1, "")}


def test_the_next_unit_s_first_page_is_sent_before_the_unit_before_is_checkpointed(
    db, sqlite_source, settings, monkeypatch, sent
):
    # given a run of three units, every chunk sent and every checkpoint written recorded in order
    run = one_entity_run(sqlite_source, settings, 150)
    events = _pages_and_checkpoints(monkeypatch)

    # when one task chains them
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=60)

    # then each unit's first page was handed to the writer before the last checkpoint of the unit before it
    order = list(dict.fromkeys(unit for kind, unit in events if kind == "page"))  # the units in the chain's order
    assert sorted(order) == sorted(run.segments.values_list("pk", flat=True))
    assert len(order) == 3
    for before, after in zip(order, order[1:], strict=False):
        last_checkpoint = max(i for i, event in enumerate(events) if event == ("checkpoint", before))
        assert events.index(("page", after)) < last_checkpoint
    run.refresh_from_db()
    assert (run.status, run.items_written, len(sent)) == (RunStatus.SUCCEEDED, 150, 150)


def test_the_unit_taken_ahead_has_two_pages_queued_before_the_unit_before_is_checkpointed(
    db, sqlite_source, settings, monkeypatch, sent
):
    # given a run of three units of five pages (10 rows a page), every page handed over and every checkpoint
    # written recorded in order
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 10
    run = one_entity_run(sqlite_source, settings, 150)
    events = _pages_and_checkpoints(monkeypatch)

    # when one task chains them
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=60)

    # then the two first pages of each unit taken ahead were handed over before the last checkpoint of the
    # unit before it (the shared writer has four rounds of calls queued across the boundary), and no more
    order = list(dict.fromkeys(unit for kind, unit in events if kind == "page"))
    assert len(order) == 3
    for before, after in zip(order, order[1:], strict=False):
        last_checkpoint = max(i for i, event in enumerate(events) if event == ("checkpoint", before))
        assert events[:last_checkpoint].count(("page", after)) == runs.CHAIN_HEAD_PAGES == 2
    run.refresh_from_db()
    assert (run.status, run.items_written, sorted(sent)) == (
        RunStatus.SUCCEEDED,
        150,
        sorted(f"THING#{n}" for n in range(1, 151)),
    )


def _failing_open_once(monkeypatch, error):
    """``_unit_open`` raising ``error`` once, for the second unit (index 1)."""
    opened = runs._unit_open
    failures = []

    def flaky_open(lease, run_, context, on_rows, ledger, segment, *, writer):
        if segment.index == 1 and not failures:
            failures.append(segment.pk)
            raise error
        return opened(lease, run_, context, on_rows, ledger, segment, writer=writer)

    monkeypatch.setattr(runs, "_unit_open", flaky_open)
    return failures


def test_a_unit_that_cannot_start_in_the_chain_for_a_transient_error_is_released_and_queued_again(
    db, sqlite_source, settings, monkeypatch, sent
):
    # given a run whose second unit fails to open once when the chain takes it (the endpoint away a moment)
    run = one_entity_run(sqlite_source, settings, 230)
    failures = _failing_open_once(monkeypatch, DynamoDBUnavailable("the endpoint went away"))
    queue: list[int] = []

    # when the first unit's task runs, which chains the open-ended rest (index 2), then takes index 1
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)

    # then the unit that failed to start is free again (not done, no lease), queued once more, and the run goes on
    second = run.segments.get(index=1)
    assert failures == [second.pk]
    assert (second.done, second.lease_owner, second.lease_expires_at) == (False, "", None)
    assert queue.count(second.pk) == 2  # the cut's message and the chain's
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING

    # and the messages finish the run: every row once, nothing left
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, 231))


def test_a_unit_that_cannot_start_in_the_chain_for_another_error_fails_the_run_naming_it(
    db, sqlite_source, settings, monkeypatch, sent
):
    # given a run whose second unit's source read fails when the chain takes it
    run = one_entity_run(sqlite_source, settings, 230)
    _failing_open_once(monkeypatch, SourceError("relation main.things: permission denied"))

    # when the first unit's task runs
    with pytest.raises(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=60)

    # then the run failed as the unit's own task would have failed it: naming that unit, no lease left
    run.refresh_from_db()
    second = run.segments.get(index=1)
    assert run.status == RunStatus.FAILED
    assert "unit things:things[1]" in run.last_error
    assert "permission denied" in run.last_error
    assert second.last_error == run.last_error
    assert not run.segments.filter(lease_expires_at__isnull=False).exists()


def test_bad_rows_in_the_unit_taken_ahead_fail_the_run_naming_that_unit(db, sqlite_source, settings, sent):
    # given pages of 10 rows, and the first page of the second unit (rows 51-60) all over DynamoDB's item limit
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 10
    huge = [{**row, "name": "x" * 410_000} for row in things_rows(10, start=51)]
    run = one_entity_run(sqlite_source, settings, 50, extra=[*huge, *things_rows(40, start=61)])

    # when one task chains the units
    with pytest.raises(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=60)

    # then the run failed at once, naming the second unit and its first bad row; no unit is left leased
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "things[1])" in run.last_error
    assert "{'id': 51}" in run.last_error
    assert not Segment.objects.filter(run=run, lease_expires_at__isnull=False).exists()
    assert run.rows_quarantined == 10


def test_a_transient_error_of_the_unit_before_releases_the_unit_taken_ahead(
    db, dynamodb, sqlite_source, settings, monkeypatch
):
    # given the first unit's last drain failing once after the chain took the second unit
    run = one_entity_run(sqlite_source, settings, 230)
    drain = runs._UnitPipeline.drain
    failed = []

    def flaky_drain(self):
        if self.lease.segment_id == run.segments.get(index=0).pk and not failed:
            ahead = Segment.objects.filter(run=run).exclude(index=0).exclude(lease_owner="")
            failed.append(ahead.exists())  # the unit taken ahead is leased now
            raise DynamoDBUnavailable("the endpoint went away")
        return drain(self)

    monkeypatch.setattr(runs._UnitPipeline, "drain", flaky_drain)
    queue: list[int] = []

    # when its task runs, and then the queued messages
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)

    # then the unit taken ahead was leased when the error came, and released for its retry: the first unit
    # retried from its checkpoint (one retry) and the run still ends with every row once
    assert failed
    assert failed[0]
    first = run.segments.get(index=0)
    assert (first.done, first.retries) == (True, 1)
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)


def test_a_lost_lease_before_the_last_checkpoint_leaves_that_unit_and_the_chain_goes_on(
    db, sqlite_source, settings, monkeypatch, sent
):
    # given another runner taking the first unit over while its last page drains (the chain took the second)
    run = one_entity_run(sqlite_source, settings, 230)
    drain = runs._UnitPipeline.drain
    first_pk = run.segments.get().pk

    def taken_over(self):
        if self.lease.segment_id == first_pk:
            Segment.objects.filter(pk=first_pk).update(fence=self.lease.fence + 1, lease_owner="other")
        return drain(self)

    monkeypatch.setattr(runs._UnitPipeline, "drain", taken_over)

    # when the task runs
    segment_run(segment_id=first_pk, on_unit=lambda unit: None, chain_seconds=60)

    # then the first unit is left to the runner that took it (not done, its checkpoint not written past the
    # take-over), and the chain went on with every other unit
    units = list(run.segments.order_by("index").values_list("index", "done", "lease_owner", "rows_read"))
    assert units[0][:3] == (0, False, "other")
    assert all(done for _index, done, _owner, _rows in units[1:])
    assert sum(rows for *_unit, rows in units[1:]) == 230 - 50  # every row after the first unit's, once
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, 231))  # the first unit's page was sent too


def test_the_chain_stops_at_its_deadline(db, dynamodb, sqlite_source, settings):
    run = one_entity_run(sqlite_source, settings, 230)
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=1e-9)
    assert list(run.segments.order_by("index").values_list("done", flat=True)) == [True, False, False]


def test_the_chain_takes_no_unit_of_a_stopped_run(db, dynamodb, sqlite_source, settings, monkeypatch):
    # given a run cancelled when its first unit has handed over its last page
    run = one_entity_run(sqlite_source, settings, 230)
    start_next = runs._Chain.start_next

    def cancel_then_start_next(self, **kwargs):
        run_cancel(run=MigrationRun.objects.get(pk=run.pk))
        return start_next(self, **kwargs)

    monkeypatch.setattr(runs._Chain, "start_next", cancel_then_start_next)
    started = timezone.now()
    segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=60)

    # then no unit was taken after the cancel: none leased, none done, none ever taken
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert not run.segments.filter(lease_expires_at__gte=started).exists()
    assert not run.segments.filter(index__gte=1, done=True).exists()
    assert not run.segments.filter(attempts__gt=0, index__gte=1).exists()
