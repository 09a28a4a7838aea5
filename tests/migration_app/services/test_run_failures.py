"""Failure truth: a failing unit ends its run ``failed`` at once, naming plan, table, unit and source key;
a scan that cannot read the target says so (never "Nothing was written"), and the alarms count it."""

import pytest
from botocore.exceptions import ReadTimeoutError

from lizzy.dynamodb import get_client, reset_client
from lizzy.observability.alarms import alarm_window_count
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.backups import backup_table
from migration_app.services.dispatch import run_dispatch
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import RunFailed, run_create
from migration_app.services.scans import ScanUnreadable
from migration_app.services.validation import plan_validate
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def things_plan(db, dynamodb, sqlite_source):
    rows = things_rows(120)
    rows[70]["name"] = "x" * 420_000  # row 71: an item over DynamoDB's 400 KB
    source = sqlite_source(THINGS_DDL, {"things": rows})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def _dispatch(plan, segments=2) -> MigrationRun:
    with plan_context(plan=plan) as context:
        run = run_create(context=context, segments=segments)
    with pytest.raises(RunFailed):  # eager Celery in tests: the task's exception reaches the caller too
        run_dispatch(run=run)
    run.refresh_from_db()
    return run


def test_async_run_with_a_too_large_item_ends_failed_naming_plan_table_unit_and_key(things_plan):
    run = _dispatch(things_plan)

    assert run.status == RunStatus.FAILED
    assert run.finished_at is not None
    assert "plan things" in run.last_error
    assert "main.things" in run.last_error
    assert "unit things:things[" in run.last_error
    assert "{'id': 71}" in run.last_error
    assert "400 KB" in run.last_error


def test_async_run_whose_writes_fail_ends_failed_with_the_unit_and_checkpoint(things_plan):
    def hook(operation, params, send):
        # every write of a row after the first page (50 rows) fails: by its items, not by the call's number,
        # since the next page's calls are in flight with the first page's (the pipeline)
        if operation == "BatchWriteItem":
            ((_table, requests),) = params["RequestItems"].items()
            if any(int(request["PutRequest"]["Item"]["PK"]["S"].split("#")[1]) > 50 for request in requests):
                raise client_error("InternalServerError", "boom", operation)
        return send(params)

    with fault_injection(hook):
        run = _dispatch(things_plan, segments=1)

    assert run.status == RunStatus.FAILED
    assert "unit things:things[0]" in run.last_error
    assert "after source key [50]" in run.last_error  # chunks of 50: the first was checkpointed
    assert "InternalServerError" in run.last_error
    assert "Nothing was written" not in run.last_error


def _read_timeout_on(operation_name):
    def hook(operation, params, send):
        if operation == operation_name:
            raise ReadTimeoutError(endpoint_url="http://dynamodb.test")
        return send(params)

    return hook


def test_validation_read_timeout_says_validation_could_not_read_and_counts_as_an_alarm(things_plan):
    before = alarm_window_count(kind="system")

    with fault_injection(_read_timeout_on("Scan")), pytest.raises(ScanUnreadable) as raised:
        plan_validate(plan=things_plan)

    assert "Validation could not read the target table Things (ReadTimeoutError)" in raised.value.message
    assert "Nothing was written" not in raised.value.message
    assert things_plan.validations.count() == 0  # no report that could be taken for a result
    assert alarm_window_count(kind="system") > before


def test_backup_read_timeout_records_no_backup(things_plan, settings, tmp_path):
    with fault_injection(_read_timeout_on("Scan")), pytest.raises(ScanUnreadable) as raised:
        backup_table(table="Things", plan=things_plan)

    assert "The backup could not read table Things" in raised.value.message
    assert things_plan.backups.count() == 0
    assert not any(path.suffix == ".jsonl" for path in tmp_path.rglob("*"))


def test_scans_use_their_own_longer_timeouts(dynamodb, settings):
    settings.DYNAMODB_READ_TIMEOUT = 5.0
    settings.DYNAMODB_SCAN_READ_TIMEOUT = 90.0
    reset_client()
    assert get_client().meta.config.read_timeout == 5.0
    assert get_client("scan").meta.config.read_timeout == 90.0
    retries = get_client("scan").meta.config.retries
    assert retries["total_max_attempts"] == settings.DYNAMODB_SCAN_MAX_ATTEMPTS + 1  # botocore: retries + the first
