"""Review of issue 18, findings 2 and 3, in the admin: what a viewer, an operator or a no-group staff user can
do beyond the named migration actions: every product action POSTed by a role it is not offered to, bulk
deletes, list_editable saves, the token admin and its autocomplete, the session-store mode with and without a
setting row, plan configuration through the change form, and secrets in what staff may look at.
"""

from __future__ import annotations

import functools
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from lizzy.models import DynamoDBPricing
from lizzy.roles import VIEWER_GROUP
from lizzy.scrub import secrets_forget
from migration_app.models import CdcStream, MigrationPlan, MigrationRun, Phase, QuarantinedRow, Segment
from sessions_app.models import HandoffRequest, SessionStoreModeChange, SessionStoreSetting
from tests.security import access_model
from tests.security.test_permission_model import PASSWORD, _user, role_clients, role_users  # noqa: F401
from tests.sessions_app.factories import SEED_PHONE

PLANTED = "planted-review18-secret-9876543210"
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_nogroup(db):
    return _user("role-staff-nogroup", staff=True)


@pytest.fixture
def clients(role_clients, staff_nogroup):  # noqa: F811
    from rest_framework.test import APIClient

    client = APIClient(raise_request_exception=False)
    client.force_login(staff_nogroup)
    return {**role_clients, "staff": client}


def _changelist(label: str) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_changelist")


@pytest.fixture
def spies(monkeypatch):
    """Every product admin action replaced by a spy that records its calls (its permissions kept)."""
    calls: list[tuple[str, str]] = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        for name in access_model.ADMIN_ACTIONS.get(label, {}):
            real = getattr(type(model_admin), name)

            def spy(self, request, queryset, _name=name, _label=label):
                calls.append((_label, _name))

            functools.update_wrapper(spy, real)
            monkeypatch.setattr(type(model_admin), name, spy)
    return calls


@pytest.fixture
def one_of_each(db, dynamodb):
    plan = MigrationPlan.objects.create(name="r18-plan", source_url="sqlite:///nowhere.sqlite3", mapping={})
    run = MigrationRun.objects.create(plan=plan)
    HandoffRequest.objects.create(phone=SEED_PHONE, node="MAIN_MENU")
    return {"plan": plan, "run": run}


def _first_pk(label: str):
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    return model._default_manager.order_by("pk").values_list("pk", flat=True).first()


def test_no_role_runs_an_action_it_is_not_offered_by_posting_it(clients, spies, one_of_each):
    """Each action of ADMIN_ACTIONS, POSTed to its changelist by every staff role; only the model's roles run it."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    schedule = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="r18-task", task="lizzy.tasks.noop", interval=schedule)
    run = one_of_each["run"]
    QuarantinedRow.objects.create(plan=run.plan, run=run, rule="1", source_key={"id": 1}, reason="r18", row={})
    wrong = []
    for label, actions in access_model.ADMIN_ACTIONS.items():
        pk = _first_pk(label)
        if pk is None:
            continue
        for action, allowed in actions.items():
            for role in ("staff", "viewer", "operator", "super"):
                spies.clear()
                clients[role].post(_changelist(label), {"action": action, "_selected_action": [pk]})
                ran = (label, action) in spies
                if ran != (role in allowed):
                    wrong.append(f"{role} {'ran' if ran else 'could not run'} {label}.{action}")
    assert wrong == []


def test_bulk_delete_is_refused_to_roles_without_the_delete_permission(clients, one_of_each):
    wrong = []
    for label in ("migration_app.migrationplan", "migration_app.migrationrun", "sessions_app.handoffrequest"):
        model = next(m for m in admin.site._registry if m._meta.label_lower == label)
        pk = _first_pk(label)
        for role in ("staff", "viewer", "operator"):
            clients[role].post(
                _changelist(label), {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
            )
            if not model._default_manager.filter(pk=pk).exists():
                wrong.append(f"{role} deleted {label} {pk}")
    assert wrong == []


def test_list_editable_saves_are_refused_to_roles_without_the_change_permission(clients, db):
    row = DynamoDBPricing.objects.create(
        name="r18", write_per_million=Decimal(1), read_per_million=Decimal(1), storage_per_gb_month=Decimal(1)
    )
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(row.pk),
        "form-0-is_active": "on",
        "_save": "Save",
    }
    for role in ("staff", "viewer"):
        response = clients[role].post(_changelist("lizzy.dynamodbpricing"), form)
        assert response.status_code == 403, role
        row.refresh_from_db()
        assert row.is_active is False, role
    clients["operator"].post(_changelist("lizzy.dynamodbpricing"), form)
    row.refresh_from_db()
    assert row.is_active is True  # the model says operators change prices


def test_no_staff_role_but_superusers_sees_or_adds_api_tokens(clients, role_users):  # noqa: F811
    token = Token.objects.get(user=role_users["super"])
    pages = [
        reverse("admin:authtoken_tokenproxy_changelist"),
        reverse("admin:authtoken_tokenproxy_change", args=[role_users["super"].pk]),
        reverse("admin:authtoken_tokenproxy_add"),
        reverse("admin:authtoken_tokenproxy_history", args=[role_users["super"].pk]),
        # the token form's user autocomplete would list every user
        reverse("admin:autocomplete") + "?app_label=authtoken&model_name=tokenproxy&field_name=user&term=role",
    ]
    for role in ("staff", "viewer", "operator"):
        for page in pages:
            response = clients[role].get(page)
            assert response.status_code == 403, (role, page, response.status_code)
            assert token.key not in response.content.decode(), (role, page)
        response = clients[role].post(reverse("admin:authtoken_tokenproxy_add"), {"user": role_users["super"].pk})
        assert response.status_code == 403, role
    assert Token.objects.count() == len(role_users)  # the walk's own tokens, none added


def test_no_role_but_superusers_changes_the_store_mode_by_any_admin_path(clients):
    add = reverse("admin:sessions_app_sessionstoresetting_add")
    for role in ("staff", "viewer", "operator"):
        assert not SessionStoreSetting.objects.exists()
        response = clients[role].post(add, {"mode": "dynamodb_only", "reason": "r18 probe"})
        assert response.status_code == 403, (role, response.status_code)
    assert not SessionStoreSetting.objects.exists()
    SessionStoreSetting.objects.create(pk=1, mode="dynamodb_only", changed_by="r18", changed_at=timezone.now())
    change = reverse("admin:sessions_app_sessionstoresetting_change", args=[1])
    for role in ("staff", "viewer", "operator"):
        response = clients[role].post(change, {"mode": "write_through", "reason": "r18 probe"})
        assert response.status_code == 403, (role, response.status_code)
        response = clients[role].post(
            _changelist("sessions_app.sessionstoresetting"),
            {"action": "delete_selected", "_selected_action": [1], "post": "yes"},
        )
    assert SessionStoreSetting.objects.get(pk=1).mode == "dynamodb_only"
    assert not SessionStoreModeChange.objects.exists()


def test_an_operators_change_form_post_cannot_touch_a_plans_configuration(clients, one_of_each):
    plan = one_of_each["plan"]
    url = reverse("admin:migration_app_migrationplan_change", args=[plan.pk])
    clients["operator"].post(
        url,
        {
            "name": "renamed",
            "source_url": "duckdb:////proc/self/environ",
            "mapping": '{"rules": []}',
            "target_tables": '["Other"]',
            "cdc": "on",
            "max_bad_rows": "5",
        },
    )
    plan.refresh_from_db()
    assert (plan.name, plan.source_url, plan.mapping, plan.target_tables, plan.cdc) == (
        "r18-plan",
        "sqlite:///nowhere.sqlite3",
        {},
        [],
        False,
    )


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv("LIZZY_REVIEW18_TOKEN", PLANTED)
    secrets_forget()
    yield
    secrets_forget()


def test_a_units_error_shown_to_a_viewer_carries_no_secret(clients, one_of_each, planted):
    """A unit that failed on something else than a SourceError (a driver's or a mapping's exception quoting a
    value) keeps the text in ``Segment.last_error``; the run's page shows units inline to every viewer."""
    run = one_of_each["run"]
    Segment.objects.create(run=run, entity="things", index=0, last_error=f"unexpected RuntimeError: {PLANTED}")
    run.last_error = f"unit failed: unexpected RuntimeError: {PLANTED}"
    run.save(update_fields=["last_error"])
    for role in ("viewer", "operator"):
        response = clients[role].get(reverse("admin:migration_app_migrationrun_change", args=[run.pk]))
        assert response.status_code == 200
        assert PLANTED not in response.content.decode(), role


def test_a_cdc_streams_error_shown_to_a_viewer_carries_no_secret(clients, one_of_each, planted):
    plan = one_of_each["plan"]
    plan.cdc = True
    plan.save(update_fields=["cdc"])
    CdcStream.objects.create(plan=plan, slot_name="r18", publication_name="r18", last_error=f"boom {PLANTED}")
    for page in (
        reverse("admin:migration_app_migrationplan_change", args=[plan.pk]),
        reverse("admin:migration_app_migrationplan_progress", args=[plan.pk]),
    ):
        response = clients["viewer"].get(page)
        assert response.status_code == 200, page
        assert PLANTED not in response.content.decode(), page


def test_a_staff_user_without_a_group_sees_no_product_data(clients, one_of_each):
    for label in ("sessions_app.customer", "sessions_app.handoffrequest", "migration_app.migrationplan"):
        assert clients["staff"].get(_changelist(label)).status_code == 403, label
    assert clients["staff"].get(reverse("admin:sessions_live_changelist")).status_code == 403
    assert clients["staff"].get(reverse("admin:lizzy_cost")).status_code == 403


def test_removing_a_user_from_the_viewer_group_takes_effect_on_the_next_request(clients, role_users):  # noqa: F811
    viewer = role_users["viewer"]
    assert clients["viewer"].get(_changelist("sessions_app.customer")).status_code == 200
    viewer.groups.remove(Group.objects.get(name=VIEWER_GROUP))
    assert clients["viewer"].get(_changelist("sessions_app.customer")).status_code == 403
    assert clients["viewer"].get("/api/v1/sessions/").status_code == 403


def test_phase_is_not_movable_by_a_viewer_through_the_console(clients, one_of_each):
    plan = one_of_each["plan"]
    plan.phase = Phase.BACKFILL
    plan.save(update_fields=["phase"])
    for action in ("start", "pause", "resume", "validate", "advance", "rollback"):
        for role in ("staff", "viewer"):
            response = clients[role].post(
                reverse("admin:migration_app_migrationplan_console", args=[plan.pk, action]), {"reason": "r18"}
            )
            assert response.status_code == 403, (role, action, response.status_code)
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL
    assert not MigrationRun.objects.exclude(pk=one_of_each["run"].pk).exists()


def test_an_unexpected_exceptions_text_is_scrubbed_before_it_is_stored(planted):
    """``_problem`` words any exception for ``Segment.last_error``, the run's error and the task's result."""
    from migration_app.services.runs import _problem

    assert PLANTED not in _problem(RuntimeError(f"driver said {PLANTED}"))
