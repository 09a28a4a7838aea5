"""DRF permission classes: a token signs a user in; what the user may do is a permission per method.

Every API view declares ``required_permissions = {"GET": (...), "PUT": (...)}`` with Django permission
names (``lizzy.api_sessions_read``); ``HasRequiredPermissions`` is the default permission class, so a view
that declares nothing refuses every signed-in caller (403) instead of letting any token in. The written
model is docs/OPERATIONS.md, "Permission model"; ``tests/security/test_permission_model.py`` walks every URL
as every role against it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# The REST API's permissions (lizzy.models.ApiAccess), by what they open.
API_SESSIONS_READ = "lizzy.api_sessions_read"
API_SESSIONS_WRITE = "lizzy.api_sessions_write"
API_SESSIONS_DELETE = "lizzy.api_sessions_delete"
API_CRM_READ = "lizzy.api_crm_read"
API_EVENTS_READ = "lizzy.api_events_read"
API_MIGRATIONS_READ = "lizzy.api_migrations_read"
API_MIGRATIONS_VALIDATE = "lizzy.api_migrations_validate"
# Staff pages reached through the API (presence shows staff user names: staff only).
LIVE_SESSIONS_VIEW = "lizzy.view_live_sessions"
# What customers wrote by SMS (the turn log's ``in``): the session page and the API show it only with this.
READ_CUSTOMER_MESSAGES = "lizzy.read_customer_messages"

ERR_NO_PERMISSION = "Your token may not do this: it lacks {permissions}."


def _required(view: Any, method: str) -> tuple[str, ...] | None:
    declared: dict[str, tuple[str, ...]] | None = getattr(view, "required_permissions", None)
    if declared is None:
        return None
    if method in declared:
        return tuple(declared[method])
    if method in ("HEAD", "OPTIONS") and "GET" in declared:
        return tuple(declared["GET"])
    return None


class HasRequiredPermissions(BasePermission):
    """The signed-in user holds every permission the view requires for this method.

    A view without ``required_permissions`` is closed. A method the view does not implement passes here,
    so the caller gets DRF's 405 rather than a misleading 403.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        required = _required(view, request.method)
        if required is None:
            # Declared, but not for a method the view lacks: pass, so DRF answers 405. Undeclared: closed.
            declared = getattr(view, "required_permissions", None) is not None
            return declared and not hasattr(view, request.method.lower())
        if user.has_perms(required):
            return True
        self.message = ERR_NO_PERMISSION.format(permissions=", ".join(required))
        return False


class IsStaff(BasePermission):
    """Signed-in staff only (ops pages reached through the API, such as presence)."""

    message = "Only ops staff may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
