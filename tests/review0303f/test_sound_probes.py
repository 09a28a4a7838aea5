"""Probes of 27992a5 that hold (they pass): kept as regression guards."""

from __future__ import annotations

import traceback

import pytest

from lizzy.dynamodb import DynamoDBError, dynamodb_batch_write
from lizzy.errors import PreconditionFailed
from lizzy.tables import SESSIONS
from migration_app.models import MigrationPlan, MigrationRun, QuarantinedRow, RunStatus, Segment
from migration_app.services.runs import run_reopen
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.review_chain.helpers import one_entity_run


def _quarantine(run, count, *, of_run=True):
    for index in range(count):
        QuarantinedRow.objects.create(
            plan_id=run.plan_id,
            run=run if of_run else None,
            rule="things",
            source_table="main.things",
            target_table="Things",
            source_key={"id": index},
            reason="bad",
        )


def _state(run):
    run = MigrationRun.objects.get(pk=run.pk)
    units = list(Segment.objects.filter(run=run).values_list("pk", "done", "retries", "last_error", "lease_owner"))
    return run.status, run.last_error, run.max_bad_rows, run.finished_at, units


@pytest.mark.django_db
def test_paused_run_within_its_allowance_resumes_and_cdc_rows_do_not_count(sqlite_source, settings, dynamodb):
    run = one_entity_run(sqlite_source, settings, 10)
    MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED, max_bad_rows=1)
    _quarantine(run, 1)
    _quarantine(run, 3, of_run=False)  # change capture's rows of the plan: not this run's
    resumed = run_reopen(run=run)
    assert (resumed.status, resumed.max_bad_rows) == (RunStatus.PENDING, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("given", [0, None])
def test_refused_resume_leaves_the_run_as_it_was(sqlite_source, settings, dynamodb, given):
    run = one_entity_run(sqlite_source, settings, 10)
    MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, last_error="boom", max_bad_rows=0)
    Segment.objects.filter(run=run).update(retries=2, last_error="unit boom")
    _quarantine(run, 1)
    before = _state(run)
    with pytest.raises(PreconditionFailed, match=r"quarantined 1 row\(s\), more than the 0"):
        run_reopen(run=run, max_bad_rows=given)
    assert _state(run) == before


@pytest.mark.django_db
def test_explicit_zero_is_not_none(sqlite_source, settings, dynamodb):
    run = one_entity_run(sqlite_source, settings, 10)
    MigrationPlan.objects.filter(pk=run.plan_id).update(max_bad_rows=3)
    MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.PAUSED)
    _quarantine(run, 2)
    with pytest.raises(PreconditionFailed):
        run_reopen(run=run, max_bad_rows=0)
    assert run_reopen(run=run).max_bad_rows == 3  # None: the larger of the run's (0) and the plan's (3)


@pytest.mark.django_db
def test_not_resumable_run_refused_without_storing_the_allowance(sqlite_source, settings, dynamodb):
    run = one_entity_run(sqlite_source, settings, 10)
    MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    before = _state(run)
    with pytest.raises(PreconditionFailed, match="only a failed, paused or cancelled"):
        run_reopen(run=run, max_bad_rows=7)
    assert _state(run) == before


def test_first_chunk_error_keeps_its_traceback(dynamodb):
    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            raise client_error("ValidationException", "refused", operation)
        return send(params)

    items = [{"phone": f"+1206555{n:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for n in range(100)]
    with fault_injection(hook), pytest.raises(DynamoDBError) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=items, concurrency=2)
    text = "".join(traceback.format_exception(excinfo.value))
    assert "_send_chunk" in text
    assert excinfo.value.__cause__ is not None
