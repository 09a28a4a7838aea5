"""A ``--limit`` run of several entities in one chained task: the unit taken ahead has spent its row budget
in its first page, and its continuation reads one more page and cuts it to an empty list (``_budgeted`` with
``remaining == 0``: ``rows[:0][-1]``), an IndexError that fails a run which has nothing wrong with it.

Without the chain (``chain_seconds=0``) the same run succeeds: the proof's control."""

from __future__ import annotations

import contextlib

import pytest

from migration_app.models import RunStatus
from migration_app.services.runs import RunFailed, segment_run
from tests.review_chain.helpers import drain_queue, two_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_limited_run_of_two_entities_succeeds_in_a_chain(sqlite_source, settings, sent, concurrency):
    # given a run limited to 10 rows an entity, two entities of 60 rows each, pages of 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = two_entity_run(sqlite_source, settings, 60, 60, limit=10)
    first, second = run.segments.order_by("pk")
    queue: list[int] = [second.pk]

    # when the first entity's task runs with a chain (the second entity's unit is taken ahead), then the queue
    with contextlib.suppress(RunFailed):
        segment_run(segment_id=first.pk, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)
    drain_queue(queue)
    run.refresh_from_db()

    # then the run succeeded with 10 rows of each entity (it fails: IndexError in the unit taken ahead)
    assert (run.status, run.last_error) == (RunStatus.SUCCEEDED, "")
    assert run.rows_read == 20
    assert sorted(sent) == sorted(
        [("Things", f"THING#{n}") for n in range(1, 11)] + [("Widgets", f"WIDGET#{n}") for n in range(1, 11)]
    )


def test_control_the_same_run_without_a_chain_succeeds(sqlite_source, settings, sent):
    run = two_entity_run(sqlite_source, settings, 60, 60, limit=10)
    for unit in run.segments.order_by("pk"):
        segment_run(segment_id=unit.pk, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    assert (run.status, run.rows_read, len(sent)) == (RunStatus.SUCCEEDED, 20, 20)
