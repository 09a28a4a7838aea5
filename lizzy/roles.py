"""Staff roles as Django groups: "viewer" looks at everything and runs nothing; "operator" also acts.

Created (and topped up with permissions of newly added models) after every ``migrate`` and by
``python manage.py ensure_roles``. Roles only add permissions: membership still requires
``is_staff`` to reach the admin at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

VIEWER_GROUP = "viewer"
OPERATOR_GROUP = "operator"
CONSOLE_VIEW_PERMISSIONS = ("view_ops_dashboard", "view_live_sessions")
OPERATOR_EXTRA_PERMISSIONS = (
    ("lizzy", "manage_live_sessions"),
    ("lizzy", "change_dynamodbpricing"),
    ("lizzy", "change_cachenodeprice"),
    ("migration_app", "change_migrationplan"),  # the migration console's buttons
)


def roles_ensure() -> dict[str, int]:
    """Create the groups and grant their permissions; returns permission counts by group. Idempotent."""
    view_permissions = list(
        Permission.objects.filter(
            Q(codename__startswith="view_") | Q(content_type__app_label="lizzy", codename__in=CONSOLE_VIEW_PERMISSIONS)
        )
    )
    extra_filter = Q(pk__in=[])
    for app_label, codename in OPERATOR_EXTRA_PERMISSIONS:
        extra_filter |= Q(content_type__app_label=app_label, codename=codename)
    operator_permissions = view_permissions + list(Permission.objects.filter(extra_filter))

    viewer, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
    viewer.permissions.add(*view_permissions)
    operator, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
    operator.permissions.add(*operator_permissions)
    return {VIEWER_GROUP: viewer.permissions.count(), OPERATOR_GROUP: operator.permissions.count()}


def roles_ensure_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: runs once per migrated app, after that app's permissions exist."""
    if using != "default":
        return
    roles_ensure()
