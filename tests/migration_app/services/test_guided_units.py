"""Guided unit sizes near an entity's end (``runs._guided_rows``) and the largest free unit taken first
(``_Chain.start_next``), issue 14: with several runners the last units of a run are small, so the runners end
within a small unit of each other; every row is still read and written once, whatever the sizes."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migration_app.models import RunStatus, Segment
from migration_app.services import runs
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, segment_run
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows
from tests.migration_app.services import test_unit_chain
from tests.review_chain.helpers import one_entity_run

_names = itertools.count()
sent = test_unit_chain.sent  # the fixture: the PK of every item sent, in call order


def _lease(run, owner: str, *, expires_in: float = 300, done: bool = False) -> Segment:
    """A unit of another entity held by ``owner`` (host:process:thread:nonce): a runner at work on the run."""
    return Segment.objects.create(
        run=run,
        entity=f"other-{next(_names)}",
        index=0,
        done=done,
        lease_owner=owner,
        lease_expires_at=timezone.now() + dt.timedelta(seconds=expires_in),
    )


@pytest.mark.parametrize(
    ("left", "owners", "expected"),
    [
        (10_000, 4, 100),  # far from the end: the run's unit size
        (800, 4, 100),  # 800 rows, 4 runners, two units each: 100 a unit
        (600, 4, 75),  # fewer: 600 / 8
        (601, 4, 76),  # rounded up, never a row short
        (40, 4, 13),  # at least an eighth of the unit size (12.5, rounded up)
        (150, 2, 38),  # 150 / 4
        (150, 1, 100),  # one runner: nothing to even out
        (0, 4, 100),  # the estimate is spent while rows are left (it was low): the unit size
        (None, 4, 100),  # no estimate
    ],
)
def test_units_cut_near_the_end_share_the_rows_left_among_the_runners(db, settings, left, owners, expected):
    settings.LIZZY_MIGRATION_UNIT_ROWS = 100
    run = one_entity_run_stub(settings)
    segment = run.segments.get(entity="things")
    segment.rows_expected = left
    for number in range(owners):
        _lease(run, f"host:{number}:1:aaaa{number}")
    assert runs._guided_rows(run, segment) == expected


def test_a_runner_is_its_host_process_and_thread_and_only_live_leases_count(db, settings):
    settings.LIZZY_MIGRATION_UNIT_ROWS = 100
    run = one_entity_run_stub(settings)
    segment = run.segments.get(entity="things")
    segment.rows_expected = 300
    # one runner holding two units of a chain (two nonces), one whose lease expired, one whose unit is done
    _lease(run, "host:1:1:aaaa")
    _lease(run, "host:1:1:bbbb")
    _lease(run, "host:2:1:cccc", expires_in=-1)
    _lease(run, "host:3:1:dddd", done=True)
    assert runs._guided_rows(run, segment) == 100  # one runner
    _lease(run, "host:1:2:eeee")  # another thread of that process: a second runner
    assert runs._guided_rows(run, segment) == 75


def one_entity_run_stub(settings):
    from migration_app.models import MigrationPlan, MigrationRun

    plan = MigrationPlan.objects.create(name=f"stub-{next(_names)}", source_url="sqlite:///unused", mapping={})
    run = MigrationRun.objects.create(plan=plan, unit_rows=settings.LIZZY_MIGRATION_UNIT_ROWS)
    Segment.objects.create(run=run, entity="things", index=0, open_ended=True)
    return run


def _chain_with_another_runner(run, queue):
    """One task's chain over the run while another runner holds a lease on it (so the cuts are guided); the
    units taken in order: (what each was, what the chain should have taken then: the open-ended rest while
    there is one, else a largest unit)."""
    first = run.segments.get(index=0).pk
    other = _lease(run, "elsewhere:1:1:ffff")
    taken: list[tuple[tuple[str, int | None], tuple[str, int | None]]] = []
    take = runs._lease_take

    def recorded(segment_id, owner):
        free = Segment.objects.filter(run=run, done=False, lease_expires_at__isnull=True)
        if free.filter(open_ended=True).exists():
            expected = ("open-ended", None)
        else:
            expected = ("cut", max((rows or 0 for rows in free.values_list("rows_expected", flat=True)), default=0))
        lease, segment = take(segment_id, owner)
        if lease is not None:
            kind = "open-ended" if segment.open_ended else "cut"
            taken.append(((kind, None if segment.open_ended else segment.rows_expected), expected))
        return lease, segment

    runs._lease_take = recorded
    try:
        segment_run(segment_id=first, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)
    finally:
        runs._lease_take = take
    Segment.objects.filter(pk=other.pk).update(done=True, lease_owner="", lease_expires_at=None)
    return taken


def test_with_another_runner_the_last_units_are_smaller_and_taken_largest_first_after_the_open_ended_rest(
    db, sqlite_source, settings, sent
):
    # given 1,000 rows in units of 100 (estimate exact: SQLite counts) and another runner at work on the run
    run = one_entity_run(sqlite_source, settings, 1000, unit_rows=100)
    queue: list[int] = []

    # when one task's chain takes its units
    taken = _chain_with_another_runner(run, queue)

    # then every row was read and sent once
    units = list(run.segments.exclude(entity__startswith="other-").order_by("index"))
    assert sum(unit.rows_read for unit in units) == 1000
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, 1001))
    # the units cut near the end are smaller (2 runners: the rows left / 4), none below 13 rows but the last
    sizes = [unit.rows_read for unit in units]  # in key order
    assert sizes[:2] == [100, 100]
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # the entity's last unit holds what was left
    assert min(sizes[:-1]) >= 13
    assert sizes[-2] < 100
    assert len(units) > 10  # more than 1,000 / 100
    # and each unit the chain took was the open-ended rest while there was one, else the largest free one
    assert len(taken) == len(units)
    assert all(unit == expected for unit, expected in taken[1:]), taken
    assert ("cut", 100) in [unit for unit, _expected in taken]
    run.refresh_from_db()
    assert run.rows_read == 1000


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 300), unit_rows=st.integers(4, 60))
def test_guided_units_cover_every_row_once(db, sqlite_source, settings, sent, rows, unit_rows):
    sent.clear()
    settings.LIZZY_MIGRATION_UNIT_ROWS = unit_rows
    source = sqlite_source(THINGS_DDL, {"things": things_rows(rows)}, name=f"source-{next(_names)}.sqlite3")
    plan = plan_save(name=f"things-{next(_names)}", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    queue: list[int] = []
    _chain_with_another_runner(run, queue)
    units = run.segments.exclude(entity__startswith="other-")
    assert sum(units.values_list("rows_read", flat=True)) == rows
    assert all(units.values_list("done", flat=True))
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, rows + 1))
    assert run.segments.filter(done=False).count() == 0
    run.refresh_from_db()
    assert run.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)


def test_a_low_estimate_cuts_small_units_only_while_it_lasts_and_every_row_once(db, sqlite_source, settings, sent):
    # given 1,000 rows estimated at 300 (stale statistics) in units of 100, another runner at work
    run = one_entity_run(sqlite_source, settings, 1000, unit_rows=100)
    Segment.objects.filter(run=run).update(rows_expected=300)
    queue: list[int] = []

    # when one task's chain takes its units
    _chain_with_another_runner(run, queue)

    # then every row once; small units while the estimate said the end was near, the unit size once it was spent
    units = list(run.segments.exclude(entity__startswith="other-").order_by("index"))
    assert sum(unit.rows_read for unit in units) == 1000
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, 1001))
    sizes = [unit.rows_read for unit in units]
    assert min(sizes[:-1]) >= 13
    assert sizes[:2] == [75, 75]  # 300 rows left for 2 runners, two units each
    assert sizes[-3:-1] == [100, 100]  # the estimate spent: units of the run's size again
