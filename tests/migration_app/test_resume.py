"""Resume: ``migrate_to_dynamodb --resume RUN`` and the runs admin's "Resume" action continue a failed or
cancelled run from its checkpoints; the action is the operators' (change_migrationplan), not viewers'."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import run_reopen
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def failed_run(db, dynamodb, tmp_path, sqlite_source, settings):
    """A run of 120 rows that failed on its third page (100 rows checkpointed)."""
    settings.LIZZY_MIGRATION_UNIT_RETRIES = 0
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    mapping = tmp_path / "things.json"
    mapping.write_text(json.dumps(things_mapping()))
    source = sqlite_source(THINGS_DDL, {"things": things_rows(120)})
    calls = {"n": 0}

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            calls["n"] += 1
            if calls["n"] == 5:
                raise client_error("InternalServerError", "boom", operation)
        return send(params)

    with fault_injection(hook), pytest.raises(CommandError, match="InternalServerError"):
        call_command("migrate_to_dynamodb", "--mapping", str(mapping), "--source", source, "--json")
    run = MigrationRun.objects.get()
    assert (run.status, run.rows_read) == (RunStatus.FAILED, 100)
    return run


def test_resume_command_continues_a_failed_run_from_its_checkpoints(failed_run, capsys):
    call_command("migrate_to_dynamodb", "--resume", str(failed_run.pk), "--json")

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["run"] == failed_run.pk
    assert summary["status"] == RunStatus.SUCCEEDED
    assert summary["rows_read"] == 120
    assert summary["validation"]["clean"]
    assert MigrationRun.objects.count() == 1


def test_cancelled_run_resumes_and_a_succeeded_one_does_not(failed_run, capsys):
    run_reopen(run=failed_run)  # pending again, as if resumed on a worker that has not started it
    call_command("migrate_to_dynamodb", "--cancel", str(failed_run.pk))
    failed_run.refresh_from_db()
    assert failed_run.status == RunStatus.CANCELLED

    call_command("migrate_to_dynamodb", "--resume", str(failed_run.pk), "--json")
    failed_run.refresh_from_db()
    assert (failed_run.status, failed_run.rows_read) == (RunStatus.SUCCEEDED, 120)

    with pytest.raises(CommandError, match="only a failed, paused or cancelled run can be resumed"):
        call_command("migrate_to_dynamodb", "--resume", str(failed_run.pk))
    with pytest.raises(CommandError, match="only a pending, running or paused run can be cancelled"):
        call_command("migrate_to_dynamodb", "--cancel", str(failed_run.pk))


def test_admin_resume_action_resumes_the_run_for_operators(failed_run, ops_admin_client):
    url = reverse("admin:migration_app_migrationrun_changelist")

    response = ops_admin_client.post(url, {"action": "resume_runs", "_selected_action": [failed_run.pk]}, follow=True)

    assert response.status_code == 200
    assert "1 run resumed from its checkpoints." in response.content.decode()
    failed_run.refresh_from_db()
    assert failed_run.status == RunStatus.SUCCEEDED  # eager Celery in tests: the units ran
    assert failed_run.rows_read == 120


def test_admin_resume_action_is_not_offered_to_viewers(failed_run, ops_viewer_client):
    response = ops_viewer_client.get(reverse("admin:migration_app_migrationrun_changelist"))

    assert "resume_runs" not in response.content.decode()
    failed_run.refresh_from_db()
    assert failed_run.status == RunStatus.FAILED
