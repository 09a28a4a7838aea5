"""The migration console in the admin: list bars, detail page, buttons, live progress JSON, permissions."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from lizzy.dynamodb import dynamodb_update_item
from migration_app.admin import ERR_REASON, duration_display
from migration_app.models import MigrationPlan, MigrationRun, Phase, RunStatus
from migration_app.selectors import percent, plan_progress
from migration_app.services.dispatch import plan_backfill_start, run_resume
from migration_app.services.phases import ERR_CUTOVER_NO_VALIDATION
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import ERR_NOT_PAUSABLE, run_create, run_execute, run_pause
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db
ROWS = 120  # more than one chunk (LIZZY_MIGRATION_CHUNK_SIZE is 50 in the test settings)


@pytest.fixture
def plan(dynamodb, sqlite_source) -> MigrationPlan:
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    return plan_save(name="things", source_url=source, mapping=things_mapping())


def console(plan, action):
    return reverse("admin:migration_app_migrationplan_console", args=[plan.pk, action])


def change_url(plan):
    return reverse("admin:migration_app_migrationplan_change", args=[plan.pk])


def progress_url(plan):
    return reverse("admin:migration_app_migrationplan_progress", args=[plan.pk])


# --- display helpers ---------------------------------------------------------------------------


def test_durations_and_percentages_read_like_a_person_would_say_them():
    assert [duration_display(s) for s in (None, 7, 245, 3720)] == ["-", "7s", "4m 05s", "1h 02m"]
    assert percent(30, 120, finished=False) == 25
    assert percent(120, 120, finished=False) == 99  # not done until the segment says so
    assert percent(0, 0, finished=True) == 100
    assert percent(5, None, finished=False) is None


# --- buttons ---------------------------------------------------------------------------------


def test_start_backfill_runs_every_segment_and_logs_who(plan, ops_admin_client, ops_admin):
    response = ops_admin_client.post(console(plan, "start"), follow=True)

    html = response.content.decode()
    assert "Started backfill run #" in html
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL  # setup → backfill on the way (guarded, backed up)
    run = plan.runs.get()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, ROWS, ROWS)
    assert LogEntry.objects.filter(user=ops_admin, object_id=str(plan.pk)).exists()
    progress = ops_admin_client.get(progress_url(plan)).json()
    assert progress["run"]["percent"] == 100
    assert progress["run"]["rows_expected"] == ROWS
    assert progress["can_start"] is True  # the run is finished: another may start
    assert progress["can_pause"] is False


def test_list_shows_phase_badge_progress_bars_rate_eta_and_validation(plan, ops_admin_client):
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context, segments=3)
        run_execute(run=run, context=context)
    plan.refresh_from_db()

    html = ops_admin_client.get(reverse("admin:migration_app_migrationplan_changelist")).content.decode()

    assert '<span class="phase-badge phase-setup" data-phase="setup">Setup</span>' in html
    assert re.search(rf'<progress class="run-total" value="{ROWS}" max="{ROWS}"', html)
    # summarized by table: one bar per table, its segments folded in a <details> (expand on demand)
    assert html.count('<details class="run-table" data-entity="things:things">') == 1
    assert html.count('<progress class="run-table-bar"') == 1
    assert html.count('<progress class="run-segment"') == 3
    assert "(3/3 segments done)" in html
    assert "100 %" in html
    assert "migration_app/console.css" in html


def test_pause_stops_after_the_chunk_in_flight_and_resume_finishes(plan):
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
        # when: paused after the first chunk
        paused = run_execute(run=run, context=context, on_rows=lambda _n: run_pause(run=run))
    # then: the checkpoint holds, nothing else ran, and a new run cannot start meanwhile
    assert (paused.status, paused.rows_read) == (RunStatus.PAUSED, 50)
    assert plan_progress(plan=plan)["can_resume"] is True
    assert plan_progress(plan=plan)["can_start"] is False
    with pytest.raises(Exception, match="resume it instead"):
        plan_backfill_start(plan=plan)
    # when resumed (Celery eager in tests)
    resumed = run_resume(run=paused)
    assert (resumed.status, resumed.rows_read, resumed.items_written) == (RunStatus.SUCCEEDED, ROWS, ROWS)


def test_pause_and_resume_buttons_report_what_they_did(plan, ops_admin_client):
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    answer = ops_admin_client.post(console(plan, "pause"), HTTP_ACCEPT="application/json").json()
    assert answer["ok"] is True
    assert answer["progress"]["run"]["status"] == "paused"
    again = ops_admin_client.post(console(plan, "pause"), HTTP_ACCEPT="application/json").json()
    assert again["ok"] is False
    assert again["message"] == ERR_NOT_PAUSABLE.format(run=run.pk, status="paused")
    done = ops_admin_client.post(console(plan, "resume"), HTTP_ACCEPT="application/json").json()
    assert done["progress"]["run"]["status"] == "succeeded"


def test_advance_shows_why_the_guard_refuses_and_changes_nothing(plan, ops_admin_client):
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    MigrationPlan.objects.filter(pk=plan.pk).update(phase=Phase.VALIDATE)

    page = ops_admin_client.get(change_url(plan)).content.decode()
    refusal = ERR_CUTOVER_NO_VALIDATION.format(at="never")
    assert f"Advance refused: {refusal}" in page
    assert re.search(r'id="action-advance" value="Advance phase" disabled', page)

    response = ops_admin_client.post(console(plan, "advance"), follow=True)

    assert refusal in response.content.decode()
    plan.refresh_from_db()
    assert plan.phase == Phase.VALIDATE


def test_validate_then_advance_then_roll_back_with_a_reason(plan, ops_admin_client):
    ops_admin_client.post(console(plan, "start"))
    ops_admin_client.post(console(plan, "advance"))  # backfill → parallel
    plan.refresh_from_db()
    assert plan.phase == Phase.PARALLEL

    no_reason = ops_admin_client.post(console(plan, "rollback"), follow=True).content.decode()
    assert ERR_REASON in no_reason
    rolled = ops_admin_client.post(console(plan, "rollback"), {"reason": "wrong source"}, follow=True)
    assert "rolled back to backfill: wrong source" in rolled.content.decode()
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL
    assert plan.transitions.get(rollback=True).reason == "wrong source"


def test_validation_report_shows_field_diffs(plan, ops_admin_client):
    ops_admin_client.post(console(plan, "start"))
    dynamodb_update_item(
        table="Things", key={"PK": "THING#7"}, update="SET #n = :n", names={"#n": "name"}, values={":n": "tampered"}
    )

    ops_admin_client.post(console(plan, "validate"))

    html = ops_admin_client.get(change_url(plan)).content.decode()
    assert "different 1" in html
    assert (
        '<td>name</td><td class="diff-expected">{&quot;S&quot;: &quot;thing 7&quot;}</td>'
        '<td class="diff-actual">{&quot;S&quot;: &quot;tampered&quot;}</td>'
    ) in html


# --- permissions and the rest of the admin -------------------------------------------------------


def test_a_viewer_sees_the_console_but_no_buttons(plan, ops_viewer_client):
    page = ops_viewer_client.get(change_url(plan))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="migration-console"' in html
    assert 'id="console-buttons"' not in html
    assert ops_viewer_client.get(progress_url(plan)).status_code == 200
    assert ops_viewer_client.post(console(plan, "start")).status_code == 403
    assert not MigrationRun.objects.exists()


def test_buttons_are_post_only(plan, ops_admin_client):
    assert ops_admin_client.get(console(plan, "start")).status_code == 405
    assert not MigrationRun.objects.exists()


def test_celery_beat_schedules_and_task_results_are_in_the_same_admin(ops_admin_client):
    index = ops_admin_client.get("/admin/").content.decode()
    assert 'href="/admin/django_celery_beat/periodictask/"' in index
    assert 'href="/admin/django_celery_results/taskresult/"' in index
    assert ops_admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert ops_admin_client.get("/admin/django_celery_results/taskresult/").status_code == 200
