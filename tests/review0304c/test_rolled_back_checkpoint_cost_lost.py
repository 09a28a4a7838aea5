"""Review of da8ca2d: a page's checkpoint that quarantines rows is one transaction; ``_checkpoint`` empties
``self.cost`` inside it, before ``_quarantine`` runs. Where the quarantine's INSERT fails (a database error),
the transaction rolls back the UPDATE that carried the cost, yet the cost is gone from the pipeline: ``close``
finds nothing to count, and the unit's write units and retries miss every call since its last checkpoint.

Promise broken (the commit's claim and ``_Cost``'s docstring): "Counted with the next fenced checkpoint or by
close() in one fenced UPDATE"; ``_UnitPipeline.close``: "then count what this unit's calls consumed since its
last checkpoint"; docs/MIGRATIONS.md: "where no checkpoint follows (an error, a stopped run), the unit adds them
in one fenced UPDATE as it closes".

Suggested fix: reset ``self.cost`` only once the checkpoint's transaction committed (after the ``with
transaction.atomic()`` block, or ``transaction.on_commit``), e.g. ``checkpointed`` kept and ``self.cost =
_Cost()`` after the block.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError

from lizzy.dynamodb import batch
from migration_app.models import MigrationRun, QuarantinedRow, RunStatus
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import things_rows
from tests.review0304c.hooks import Faults
from tests.review_chain.helpers import one_entity_run


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_cost_of_a_page_whose_quarantine_insert_fails_is_counted(
    sqlite_source, settings, dynamodb, monkeypatch, concurrency
):
    # given one unit of one 50-row page: the chunk with THING#30 is refused, the page is rewritten PutItem by
    # PutItem, THING#7's PutItem is refused (a bad row, quarantined with the page's checkpoint), and the
    # quarantine's INSERT fails (the database dropped the connection, say)
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 50, unit_rows=1000)
    unit = run.segments.get()
    hook = Faults(refuse_pk="THING#30", refuse_put="THING#7", stingy_pk="THING#1", stingy=3)

    def quarantine_fails(*_args, **_kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runs, "_quarantine", quarantine_fails)
    with fault_injection(hook), pytest.raises(runs.RunFailed):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert unit.rows_read == 0  # the checkpoint was rolled back
    assert sum(hook.units) > 0
    assert hook.unprocessed == 3
    # then the calls the unit sent are in its counters all the same (close counts what no checkpoint did)
    assert (unit.write_units, unit.unprocessed_retries) == (pytest.approx(sum(hook.units)), hook.unprocessed), (
        f"unit counted {unit.write_units} write units / {unit.unprocessed_retries} unprocessed retries; "
        f"DynamoDB reported {sum(hook.units)} in {len(hook.units)} calls, {hook.unprocessed} left-over answers"
    )


@pytest.mark.django_db
def test_same_with_a_real_database_refusal_a_nul_in_the_bad_row(sqlite_source, settings, dynamodb, monkeypatch):
    """No monkeypatch: the bad row's text holds a NUL, which PostgreSQL's jsonb refuses ("unsupported Unicode
    escape sequence"), so the quarantine's INSERT fails for real and rolls the checkpoint back."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("jsonb's refusal of \\u0000 is PostgreSQL's")
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    nul_row = {"id": 51, "name": "bad\x00name", "price": "1.50", "active": 1, "updated_at": None, "tags": None}
    # page 2 = rows 51-55: its chunk refused (row 51), rewritten PutItem by PutItem, row 51's PutItem refused
    run = one_entity_run(sqlite_source, settings, 50, unit_rows=1000, extra=[nul_row, *things_rows(4, start=52)])
    unit = run.segments.get()
    hook = Faults(refuse_pk="THING#51", refuse_put="THING#51", stingy_pk="THING#1", stingy=3)

    with fault_injection(hook), pytest.raises(runs.RunFailed):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    unit.refresh_from_db()
    # (since the fix, the NUL is stored as the text \u0000: the row is quarantined, page 2 checkpointed, and
    # the run fails on the bad-row limit, its error naming the row)
    assert unit.rows_read == 55
    (bad,) = QuarantinedRow.objects.filter(run=run)
    assert bad.row["name"] == "bad\\u0000name"
    assert "source key {'id': 51}" in MigrationRun.objects.get(pk=run.pk).last_error
    assert sum(hook.units) > 0
    assert (unit.write_units, unit.unprocessed_retries) == (pytest.approx(sum(hook.units)), hook.unprocessed), (
        f"unit counted {unit.write_units} write units / {unit.unprocessed_retries} unprocessed retries; "
        f"DynamoDB reported {sum(hook.units)} in {len(hook.units)} calls, {hook.unprocessed} left-over answers"
    )
