import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from lizzy.roles import OPERATOR_GROUP, VIEWER_GROUP, roles_ensure

pytestmark = pytest.mark.django_db


def codenames(group_name):
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_migrate_creates_a_viewer_group_that_can_look_but_not_act():
    viewer = codenames(VIEWER_GROUP)
    assert {"view_live_sessions", "view_ops_dashboard", "view_capacityusage", "view_customer"} <= viewer
    assert not {name for name in viewer if not name.startswith("view_")}
    assert "manage_live_sessions" not in viewer


def test_operators_may_also_run_the_session_actions_and_the_migration_console():
    assert {"manage_live_sessions", "change_migrationplan"} <= codenames(OPERATOR_GROUP)
    assert "change_migrationplan" not in codenames(VIEWER_GROUP)


def test_ensure_roles_is_idempotent(capsys):
    before = roles_ensure()
    call_command("ensure_roles")
    assert roles_ensure() == before
    assert f"{VIEWER_GROUP}: {before[VIEWER_GROUP]} permission(s)" in capsys.readouterr().out
