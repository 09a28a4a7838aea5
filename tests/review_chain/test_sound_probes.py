"""Probes that pass on the reviewed code (kept as evidence of what was checked): several entities in one
chain with one shared writer, a concurrency of 1, and a pause in the middle of a chain then a resume."""

from __future__ import annotations

import pytest

from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_pause, run_reopen, segment_run
from tests.review_chain.helpers import drain_queue, two_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_two_entities_in_one_chain_each_row_once_in_its_own_table(sqlite_source, settings, sent, concurrency):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = two_entity_run(sqlite_source, settings, 130, 120)
    queue = list(run.segments.order_by("pk").values_list("pk", flat=True))
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 250, 250)
    expected = [("Things", f"THING#{n}") for n in range(1, 131)] + [("Widgets", f"WIDGET#{n}") for n in range(1, 121)]
    assert sorted(sent) == sorted(expected)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_pause_while_the_unit_before_drains_then_a_resume(sqlite_source, settings, sent, monkeypatch, concurrency):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = two_entity_run(sqlite_source, settings, 130, 0)
    start_next = runs._Chain.start_next
    paused = []

    def start_then_pause(self, **kwargs):
        start_next(self, **kwargs)
        if not paused:
            paused.append(self.next is not None)
            run_pause(run=MigrationRun.objects.get(pk=run.pk))

    monkeypatch.setattr(runs._Chain, "start_next", start_then_pause)
    queue: list[int] = []
    segment_run(
        segment_id=run.segments.order_by("pk").first().pk, on_unit=lambda u: queue.append(u.pk), chain_seconds=60
    )
    run.refresh_from_db()
    assert paused == [True]
    assert run.status == RunStatus.PAUSED
    assert not run.segments.exclude(lease_owner="").exists()  # nothing left leased
    run_reopen(run=run)
    queue = list(run.segments.filter(done=False).values_list("pk", flat=True))  # run_dispatch's messages
    drain_queue(queue)
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 130, 130)
    assert sorted(key for _t, key in set(sent)) == sorted(f"THING#{n}" for n in range(1, 131))


def _writer_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("batch-writer")]


def test_an_unexpected_error_in_the_drain_of_the_unit_before_fails_the_run_naming_it(
    sqlite_source, settings, sent, monkeypatch
):
    from migration_app.models import Segment

    run = two_entity_run(sqlite_source, settings, 130, 0)
    first_pk = run.segments.order_by("pk").first().pk
    drain = runs._UnitPipeline.drain
    seen = []

    def broken_drain(self):
        if self.lease.segment_id == first_pk and not seen:
            seen.append(Segment.objects.filter(run=run).exclude(pk=first_pk).exclude(lease_owner="").count())
            raise KeyError("boom")
        return drain(self)

    monkeypatch.setattr(runs._UnitPipeline, "drain", broken_drain)
    before = _writer_threads()
    with pytest.raises(runs.RunFailed):
        segment_run(segment_id=first_pk, on_unit=lambda u: None, chain_seconds=60)
    run.refresh_from_db()
    assert seen == [1]  # a unit was taken ahead when the error came
    assert run.status == RunStatus.FAILED
    assert "things[0]" in run.last_error
    assert "KeyError" in run.last_error
    assert not run.segments.exclude(lease_owner="").exists()
    assert _writer_threads() == before
