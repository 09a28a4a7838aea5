"""At ``LIZZY_MIGRATION_WRITE_CONCURRENCY=1`` a page is still handed to DynamoDB after the run was stopped.

e9126cd made the renewal before a page refuse a stopped run (``_UnitPipeline._renew``: "no page is handed
over after the stop", docs/MIGRATIONS.md, "Leases and fencing"), but only on the writer's path. With a
concurrency of 1, ``_UnitPipeline.write`` still fences the page with ``lease_renew`` (the lease only, not the
run), then ``page_load`` sends the whole page; the stop is seen at the page's checkpoint, refused after the
items were written. A pause or cancel that lands while the next page is read (between the previous page's
``STOPPED`` look and the write) gets that page written anyway: the target holds items the stopped run's
counters and checkpoint do not (a cancelled run "writes nothing more"). The chain's unit taken ahead at
concurrency 1 (``_Chain._start``: one page, in the caller's thread) goes the same way. Concurrency 4 (the
control case) stops there.

Fix: at concurrency 1 fence the page with ``self._renew()`` (refused once the run stopped, ``stopped`` set,
``renewed_at`` updated) instead of ``lease_renew``; the ``STOPPED`` SELECT after the checkpoint is then
redundant (a stop during ``page_load`` is seen by the checkpoint already).
"""

from __future__ import annotations

import pytest

from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_cancel, segment_run
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_no_page_read_after_the_cancel_is_sent(sqlite_source, settings, sent, monkeypatch, concurrency):
    # given pages of 100 rows (300 rows, one unit), and the operator cancelling the run while the unit's second
    # page is read (after the read, before the page is handed over)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=1000)
    unit = run.segments.get().pk
    budgeted, pages = runs._budgeted, []

    def read_then_cancel(source, relation, rows, remaining, checkpoint):
        pages.append([row["id"] for row in rows])
        if len(pages) == 2:
            run_cancel(run=MigrationRun.objects.get(pk=run.pk))
        return budgeted(source, relation, rows, remaining, checkpoint)

    monkeypatch.setattr(runs, "_budgeted", read_then_cancel)

    # when the unit's task runs it
    segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)

    # then the run is cancelled, and none of the page read at the cancel went to DynamoDB (it fails at
    # concurrency 1: its 100 items are sent, then its checkpoint is refused)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    second = {f"THING#{n}" for n in pages[1]}
    assert len(second) == 100
    leaked = sorted(second & {pk for _table, pk in sent}, key=lambda pk: int(pk.split("#")[1]))
    assert leaked == [], f"{len(leaked)} item(s) of a page read at the cancel were sent: {leaked[:3]}..."
    assert run.rows_read <= 100  # the first page's checkpoint at most
