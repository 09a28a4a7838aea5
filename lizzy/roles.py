"""Roles as Django groups: "viewer" looks and runs nothing, "operator" also acts, "api_client" is a token.

The written model is docs/OPERATIONS.md, "Permission model". Groups are *set* (not topped up) after every
``migrate`` and by ``python manage.py ensure_roles``: a permission removed from a role here is removed from
the group too. Viewers get the ``view_*`` permissions of the product's own data only: never API tokens,
users, Django sessions or Celery task results (which may carry error text), and only read permissions of
the API. Staff roles still need ``is_staff`` to reach the admin at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

VIEWER_GROUP = "viewer"
OPERATOR_GROUP = "operator"
API_CLIENT_GROUP = "api_client"
CONSOLE_VIEW_PERMISSIONS = ("view_ops_dashboard", "view_live_sessions")
# Apps whose view permissions would show secrets or sign-in material: tokens, users and their groups,
# Django's session keys, Celery results (exception text and arguments), content types (nothing to see).
VIEWER_EXCLUDED_APPS = ("authtoken", "auth", "sessions", "django_celery_results", "contenttypes")
API_READ_PERMISSIONS = (
    ("lizzy", "api_sessions_read"),
    ("lizzy", "api_crm_read"),
    ("lizzy", "api_events_read"),
    ("lizzy", "api_migrations_read"),
)
OPERATOR_EXTRA_PERMISSIONS = (
    ("lizzy", "manage_live_sessions"),
    ("lizzy", "read_customer_messages"),  # the session page's conversation, for answering hand-offs
    ("lizzy", "change_dynamodbpricing"),
    ("lizzy", "change_cachenodeprice"),
    ("migration_app", "change_migrationplan"),  # the migration console's buttons and actions
    ("sessions_app", "change_handoffrequest"),  # close hand-offs
    ("lizzy", "api_sessions_write"),
    ("lizzy", "api_sessions_delete"),
    ("lizzy", "api_migrations_validate"),
)
# A CRM integration's token: read and write sessions, read the CRM; no deletion, no migrations, no events.
API_CLIENT_PERMISSIONS = (
    ("lizzy", "api_sessions_read"),
    ("lizzy", "api_sessions_write"),
    ("lizzy", "api_crm_read"),
)


def _named(pairs: tuple[tuple[str, str], ...]) -> list[Permission]:
    query = Q(pk__in=[])
    for app_label, codename in pairs:
        query |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(query))


def viewer_permissions() -> list[Permission]:
    views = Permission.objects.filter(
        Q(codename__startswith="view_") | Q(content_type__app_label="lizzy", codename__in=CONSOLE_VIEW_PERMISSIONS)
    ).exclude(content_type__app_label__in=VIEWER_EXCLUDED_APPS)
    return list(views) + _named(API_READ_PERMISSIONS)


def roles_ensure() -> dict[str, int]:
    """Create the groups and set their permissions; returns permission counts by group. Idempotent."""
    viewer_set = viewer_permissions()
    wanted = {
        VIEWER_GROUP: viewer_set,
        OPERATOR_GROUP: viewer_set + _named(OPERATOR_EXTRA_PERMISSIONS),
        API_CLIENT_GROUP: _named(API_CLIENT_PERMISSIONS),
    }
    counts = {}
    for name, permissions in wanted.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
        counts[name] = group.permissions.count()
    return counts


def roles_ensure_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: runs once per migrated app, after that app's permissions exist."""
    if using != "default":
        return
    roles_ensure()
