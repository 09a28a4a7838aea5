import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from lizzy.roles import API_CLIENT_GROUP, OPERATOR_GROUP, VIEWER_GROUP, roles_ensure

pytestmark = pytest.mark.django_db


def codenames(group_name):
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def labels(group_name):
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group_name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_migrate_creates_a_viewer_group_that_can_look_but_not_act():
    viewer = codenames(VIEWER_GROUP)
    assert {"view_live_sessions", "view_ops_dashboard", "view_capacityusage", "view_customer"} <= viewer
    assert {name for name in viewer if not name.startswith("view_")} == {
        "api_sessions_read",
        "api_crm_read",
        "api_events_read",
        "api_migrations_read",
    }
    assert "manage_live_sessions" not in viewer


def test_viewers_never_see_tokens_users_django_sessions_or_task_results():
    viewer = labels(VIEWER_GROUP)
    assert not {name for name in viewer if name.split(".")[0] in {"authtoken", "auth", "sessions"}}
    assert not {name for name in viewer if name.startswith("django_celery_results.")}
    assert "django_celery_beat.view_periodictask" in viewer  # the runbook's "is beat running?"


def test_operators_may_also_run_the_session_actions_and_the_migration_console():
    assert {"manage_live_sessions", "change_migrationplan", "change_handoffrequest"} <= codenames(OPERATOR_GROUP)
    assert "change_migrationplan" not in codenames(VIEWER_GROUP)
    assert "change_sessionstoresetting" not in codenames(OPERATOR_GROUP)  # the store mode: superusers


def test_an_api_client_token_reads_and_writes_sessions_but_never_deletes_them():
    assert codenames(API_CLIENT_GROUP) == {"api_sessions_read", "api_sessions_write", "api_crm_read"}


def test_ensure_roles_removes_a_permission_a_role_must_not_have():
    viewer = Group.objects.get(name=VIEWER_GROUP)
    viewer.permissions.add(Permission.objects.get(codename="view_token"))
    roles_ensure()
    assert "view_token" not in codenames(VIEWER_GROUP)


def test_ensure_roles_is_idempotent(capsys):
    before = roles_ensure()
    call_command("ensure_roles")
    assert roles_ensure() == before
    assert f"{VIEWER_GROUP}: {before[VIEWER_GROUP]} permission(s)" in capsys.readouterr().out
