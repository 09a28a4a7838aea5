"""The migration plan pages read truthfully at a glance (issue 16): tables gone after a local endpoint restart,
the mapping indented and read-only, no hand-made runs, one timestamp format."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from lizzy.dynamodb import dynamodb_delete_table, dynamodb_describe_table
from migration_app.models import MigrationPlan, Phase
from migration_app.selectors import plan_progress, plan_tables_missing
from migration_app.services.phases import plan_advance
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db
TIMESTAMP = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\b")
DJANGO_DEFAULT_TIMESTAMP = re.compile(r"\b(?:a\.m\.|p\.m\.|noon|midnight)|[A-Z][a-z]{2}\. \d{1,2}, 20\d\d")


@pytest.fixture
def migrated(dynamodb, sqlite_source) -> MigrationPlan:
    """A plan backfilled, validated clean and advanced to ``parallel``: what a restart then breaks."""
    source = sqlite_source(THINGS_DDL, {"things": things_rows(60)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, reason="test")
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, reason="test")
    plan_validate(plan=plan, mode="full")
    plan.refresh_from_db()
    return plan


def change_url(plan):
    return reverse("admin:migration_app_migrationplan_change", args=[plan.pk])


def restart_the_endpoint(plan):
    """What a restart of `make run` does to its in-memory DynamoDB endpoint: the tables are gone."""
    for table in plan.target_tables:
        dynamodb_delete_table(table=table)


def test_a_plan_whose_tables_are_gone_says_so_and_cannot_advance(migrated, ops_admin_client):
    # given a clean plan
    assert plan_progress(plan=migrated)["tables_problem"] is None
    assert plan_progress(plan=migrated)["advance_refused"] is None
    # when the endpoint forgets its tables
    restart_the_endpoint(migrated)
    # then the page says what happened and what to do, the clean validation no longer holds, Advance is off
    progress = plan_progress(plan=migrated)
    assert plan_tables_missing(plan=migrated) == migrated.target_tables
    assert f"python manage.py migration_setup_tables {migrated.name}" in progress["tables_problem"]
    assert progress["validation"]["clean"] is True
    assert progress["validation"]["stale"] is True
    page = ops_admin_client.get(change_url(migrated)).content.decode()
    assert re.search(r'<p class="errornote" id="tables-problem">Target table\(s\) Things', page)
    assert "Last validation: no longer holds (target tables missing); clean" in page
    assert re.search(r'id="action-advance" value="Advance phase" disabled', page)
    listing = ops_admin_client.get(reverse("admin:migration_app_migrationplan_changelist")).content.decode()
    assert "target tables missing" in listing
    # and a POST that gets past the disabled button changes nothing
    answer = ops_admin_client.post(
        reverse("admin:migration_app_migrationplan_console", args=[migrated.pk, "advance"]),
        HTTP_ACCEPT="application/json",
    ).json()
    assert answer["ok"] is False
    assert "do not exist any more" in answer["message"]
    migrated.refresh_from_db()
    assert migrated.phase == Phase.PARALLEL


def test_migration_status_does_not_say_clean_for_a_plan_whose_tables_are_gone(migrated, capsys):
    call_command("migration_status")
    assert "validation clean;" not in capsys.readouterr().out + ";"  # ends with "validation clean" when fine
    restart_the_endpoint(migrated)
    call_command("migration_status")
    out = capsys.readouterr().out
    assert "validation clean, which no longer holds: Target table(s) Things do not exist any more" in out


def test_migration_setup_tables_recreates_them_and_the_warning_goes(migrated, capsys):
    restart_the_endpoint(migrated)
    call_command("migration_setup_tables", migrated.name)
    assert "created Things (empty). Start the backfill again" in capsys.readouterr().out
    assert all(dynamodb_describe_table(table=table) for table in migrated.target_tables)
    assert plan_progress(plan=migrated)["tables_problem"] is None
    call_command("migration_setup_tables", migrated.name)
    assert "every target table exists" in capsys.readouterr().out


def test_a_plan_in_setup_has_no_tables_yet_and_that_is_no_problem(dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(3)})
    plan = plan_save(name="fresh", source_url=source, mapping=things_mapping())
    assert plan_tables_missing(plan=plan) == []
    assert plan_progress(plan=plan)["tables_problem"] is None


@pytest.mark.parametrize("client_name", ["ops_admin_client", "ops_viewer_client"])
def test_the_mapping_is_indented_and_read_only_for_everyone(migrated, client_name, request):
    client = request.getfixturevalue(client_name)
    page = client.get(change_url(migrated)).content.decode()
    shown = re.search(r'<pre class="mapping-json" id="plan-mapping">(.*?)</pre>', page, re.DOTALL)
    assert shown
    text = shown.group(1).replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")
    assert json.loads(text) == migrated.mapping
    assert '\n  "rules": [' in text or '\n  "' in text  # indented, not one line
    assert 'name="mapping"' not in page  # no editable field (a mapping changes through its file, checked)


def test_runs_are_not_added_by_hand(migrated, ops_admin_client):
    listing = ops_admin_client.get(reverse("admin:migration_app_migrationrun_changelist")).content.decode()
    assert "Add migration run" not in listing
    assert ops_admin_client.get(reverse("admin:migration_app_migrationrun_add")).status_code == 403


def test_plan_pages_use_one_timestamp_format(migrated, ops_admin_client):
    pages = [
        ops_admin_client.get(change_url(migrated)).content.decode(),
        ops_admin_client.get(reverse("admin:migration_app_migrationplan_changelist")).content.decode(),
        ops_admin_client.get(reverse("admin:migration_app_migrationrun_changelist")).content.decode(),
    ]
    for page in pages:
        assert TIMESTAMP.search(page)
        assert not DJANGO_DEFAULT_TIMESTAMP.search(page), DJANGO_DEFAULT_TIMESTAMP.search(page).group(0)
        assert not re.search(r"\d\d:\d\d:\d\d\.\d+\+00:00", page)  # no raw ISO strings beside them
