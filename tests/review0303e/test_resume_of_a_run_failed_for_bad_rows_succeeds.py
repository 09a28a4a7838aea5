"""A run failed for more bad rows than it allows, resumed as it is, ends ``succeeded``: the failure is gone
(``last_error`` cleared by ``run_reopen``), with ``rows_quarantined`` still over the run's ``max_bad_rows``.

The page with the bad row is checkpointed (the row quarantined, ``last_key`` past it) before
``_fail_past_limit`` raises ``RunFailed``; the unit is released not done, the run ``failed``. ``run_reopen``
clears the error, the unit resumes from its checkpoint past the row, reads nothing more and releases itself
``done``, and ``_run_totals_update(close=True)`` closes the run ``succeeded``: nothing counts the
quarantine against ``run.max_bad_rows`` again (only a page's *new* bad rows are). The limit is the
operator's decision (``--max-bad-rows`` / the plan's ``max_bad_rows``, copied to the run at its creation and
not changed by a resume); docs/MIGRATIONS.md: "A run fails as soon as more rows are quarantined than it
allows". When the bad row is the unit's last (here), the run is over at the failure: the resume just
relabels it ``succeeded``; the same holds when it is not (the rest is written, then ``succeeded``).
Promise: a run says ``succeeded`` only when ... it was not failed by a decision that should stand.

Fix: before closing ``succeeded`` (``_run_totals_update``'s ``closing`` condition, or ``run_reopen``), compare
the run's quarantined rows with its ``max_bad_rows`` (fail it again with ERR_TOO_MANY_BAD_ROWS), or let a
resume take a new ``max_bad_rows`` (the operator's explicit override) and refuse one that does not cover
the quarantine.
"""

from __future__ import annotations

import pytest

from lizzy.errors import PreconditionFailed
from migration_app.models import MigrationPlan, RunStatus
from migration_app.services.dispatch import run_resume
from migration_app.services.runs import RunFailed, segment_run
from tests.review_chain.helpers import one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_resumed_run_with_more_bad_rows_than_it_allows_does_not_succeed(
    sqlite_source, settings, dynamodb, concurrency
):
    # given a run allowing no bad row (the default), whose last row is an item over 400 KB
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    big = {"id": 200, "name": "x" * 500_000, "price": "1.50", "active": 1, "updated_at": None, "tags": "[]"}
    run = one_entity_run(sqlite_source, settings, 199, unit_rows=1000, extra=[big])
    with pytest.raises(RunFailed):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "more than the 0 this run allows" in run.last_error
    assert (run.rows_quarantined, run.max_bad_rows) == (1, 0)

    # when the operator resumes it as it is (the console's Resume; Celery eager in tests)
    # then the resume is refused, saying why and how, and the run stays failed with its error (it ended
    # ``succeeded`` before: the error gone, 1 row quarantined against an allowance of 0)
    with pytest.raises(PreconditionFailed, match=r"quarantined 1 row\(s\), more than the 0 it may.*--max-bad-rows 1"):
        run_resume(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "more than the 0 this run allows" in run.last_error

    # and resumed with an allowance that covers its quarantine (the operator's decision), it succeeds
    if concurrency == 1:
        resumed = run_resume(run=run, max_bad_rows=1)
    else:  # the plan's allowance raised, then resumed from the console
        MigrationPlan.objects.filter(pk=run.plan_id).update(max_bad_rows=1)
        resumed = run_resume(run=run)
    assert (resumed.status, resumed.rows_quarantined, resumed.max_bad_rows) == (RunStatus.SUCCEEDED, 1, 1)
