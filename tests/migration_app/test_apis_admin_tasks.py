"""REST API (authenticated), admin actions, and the scheduled Celery tasks."""

import sqlite3

import pytest
from django.core.cache import cache
from django.urls import reverse

from migration_app.models import MigrationPlan, Phase, RunKind
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.tasks import LOCK_KEY, catch_up_task, scheduled_catch_ups_task, scheduled_validations_task
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def plan(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(12)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    return plan


def test_api_requires_authentication(anonymous_client, db):
    response = anonymous_client.get(reverse("migrations:plan-list"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_api_lists_plans_and_queues_validation(api_client, plan):
    listed = api_client.get(reverse("migrations:plan-list")).json()["results"]
    assert listed[0]["name"] == "things"
    assert listed[0]["latest_run"]["rows_read"] == 12

    queued = api_client.post(reverse("migrations:plan-validate", args=["things"]), {"mode": "quick"}, format="json")
    assert queued.status_code == 202
    detail = api_client.get(reverse("migrations:plan-detail", args=["things"])).json()
    assert detail["latest_validation"]["clean"] is True  # eager Celery ran it

    bad = api_client.post(reverse("migrations:plan-validate", args=["things"]), {"mode": "slow"}, format="json")
    assert bad.status_code == 400
    assert api_client.get(reverse("migrations:plan-detail", args=["nope"])).status_code == 404


def test_admin_advance_action_backs_up_and_reports(admin_client, plan):
    response = admin_client.post(
        reverse("admin:migration_app_migrationplan_changelist"),
        {"action": "advance_phase", "_selected_action": [plan.pk]},
        follow=True,
    )
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL
    assert "1 plan advanced." in response.content.decode()
    assert plan.transitions.get().backups.get().item_count == 12
    run_page = admin_client.get(reverse("admin:migration_app_migrationrun_changelist"))
    assert "<progress" in run_page.content.decode()


def test_scheduled_catch_up_copies_rows_changed_since_the_last_run(plan, sqlite_source, settings):
    # given the plan running in parallel and a row changed at the source after the backfill
    MigrationPlan.objects.filter(pk=plan.pk).update(phase=Phase.PARALLEL)
    path = plan.source_url.split("sqlite:///", 1)[1]
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE things SET name = 'renamed', updated_at = '2999-01-01T00:00:00+00:00' WHERE id = 5")

    # when beat fires
    assert scheduled_catch_ups_task() == [plan.pk]

    # then one catch-up run copied just that row, and the scheduled validation is clean
    run = plan.runs.get(kind=RunKind.CATCH_UP)
    assert (run.status, run.rows_read) == ("succeeded", 1)
    scheduled_validations_task()
    assert plan.validations.latest("created_at").clean


def test_a_second_catch_up_while_one_holds_the_lock_is_skipped(plan):
    cache.add(LOCK_KEY.format(plan=plan.pk, job="catch-up"), "1", 60)
    try:
        assert catch_up_task(plan.pk) is None
    finally:
        cache.delete(LOCK_KEY.format(plan=plan.pk, job="catch-up"))
    assert plan.runs.count() == 1
