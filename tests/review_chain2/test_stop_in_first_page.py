"""A run stopped (paused, cancelled) while the chain writes the first page of the unit it takes ahead, with a
concurrency of 1 (pages written in the caller's thread): ``_Chain._start`` sends that page, the page's
checkpoint is refused (the run stopped) and its pipeline is ``stopped``, but ``_start`` keeps the unit as
``next`` all the same, and its continuation (``_segment_loop`` -> ``_unit_pump``) reads and writes one more
page: rows written after the stop, and in a ``--limit`` run rows past the limit (``remaining`` was never
decreased: ``_unit_pump`` returns on ``stopped`` before it).

Outside a chain the same unit stops after the page in flight (``_unit_pump`` returns on ``stopped``): the
controls."""

from __future__ import annotations

import pytest

from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import run_pause, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import one_entity_run, two_entity_run

pytestmark = pytest.mark.django_db


def _pause_at(run, first_key: str):
    """A hook pausing the run while the BatchWriteItem carrying ``first_key`` is in flight; the keys sent."""
    keys: list[str] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            page = [r["PutRequest"]["Item"]["PK"]["S"] for reqs in params["RequestItems"].values() for r in reqs]
            keys.extend(page)
            if first_key in page:
                run_pause(run=MigrationRun.objects.get(pk=run.pk))
        return send(params)

    return hook, keys


@pytest.mark.parametrize("chain_seconds", [60, 0], ids=["chain", "control-no-chain"])
def test_a_limited_run_paused_in_the_first_page_of_the_unit_taken_ahead_writes_nothing_past_its_limit(
    sqlite_source, settings, dynamodb, chain_seconds
):
    # given a run limited to 10 rows an entity (pages of 10), two entities of 60 rows, written one page at a time
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = two_entity_run(sqlite_source, settings, 60, 60, limit=10)
    first, second = run.segments.order_by("pk")
    hook, keys = _pause_at(run, "WIDGET#1")

    # when the first entity's task runs (with a chain it takes the second entity's unit ahead), and the run
    # is paused while the second entity's first page is being written
    with fault_injection(hook):
        segment_run(segment_id=first.pk, on_unit=lambda unit: None, chain_seconds=chain_seconds)
        if not chain_seconds:
            segment_run(segment_id=second.pk, on_unit=lambda unit: None, chain_seconds=0)

    # then no Widgets row past the run's limit of 10 was written (with the chain: WIDGET#11-20 are)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    widgets = sorted({key for key in keys if key.startswith("WIDGET#")}, key=lambda k: int(k.split("#")[1]))
    assert widgets == [f"WIDGET#{n}" for n in range(1, 11)]
    assert not run.segments.exclude(lease_owner="").exists()


@pytest.mark.parametrize("chain_seconds", [60, 0], ids=["chain", "control-no-chain"])
def test_a_run_paused_in_the_first_page_of_the_unit_taken_ahead_writes_no_page_after_it(
    sqlite_source, settings, dynamodb, chain_seconds
):
    # given 230 rows in units of 50, pages of 10 written one at a time; the first unit's cut makes units 1
    # (rows 51-100) and 2 (the open-ended rest): the chain takes unit 2 first (rows 101-150)
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 10
    run = one_entity_run(sqlite_source, settings, 230)
    hook, keys = _pause_at(run, "THING#101")
    queue: list[int] = []

    # when the first unit's task runs, and the run is paused while unit 2's first page (101-110) is written
    with fault_injection(hook):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda u: queue.append(u.pk), chain_seconds=chain_seconds)
        if not chain_seconds:  # the control: unit 2's own task, no chain
            unit = run.segments.get(index=2)
            segment_run(segment_id=unit.pk, on_unit=lambda u: queue.append(u.pk), chain_seconds=0)

    # then nothing after the page in flight at the pause was written (with the chain: 111-120 are)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    after = keys[keys.index("THING#101") :]
    assert after == [f"THING#{n}" for n in range(101, 111)]
