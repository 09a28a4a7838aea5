"""The written permission model, as data: who may call what. docs/OPERATIONS.md, "Permission model", mirrors it.

``tests/security/test_permission_model.py`` walks every URL of the URLconf (admin included) and every admin
action as each role and compares what answered with these tables; a URL, model admin or action missing
here fails the walk, and so does a difference with the doc's tables.

Roles: ``anon`` (no credentials), ``user`` (signed in, no role: a token of a user nobody gave anything),
``client`` (the ``api_client`` group: a CRM integration's token), ``viewer`` and ``operator`` (staff in
those groups), ``super`` (superuser).
"""

from __future__ import annotations

ROLES = ("anon", "user", "client", "viewer", "operator", "super")
STAFF = ("viewer", "operator", "super")
EVERYONE = ROLES
SIGNED_IN = ("user", "client", "viewer", "operator", "super")
OPERATORS = ("operator", "super")
SUPER = ("super",)
NOBODY: tuple[str, ...] = ()

# Routes that are not admin model pages: URL name -> {method: roles that get an answer (not 401/403/login)}.
# Methods not listed are not served (405) or not checked (the admin's pages answer GET and POST only).
ROUTES: dict[str, dict[str, tuple[str, ...]]] = {
    # probes and metrics
    "healthz": {"GET": EVERYONE},
    "readyz": {"GET": EVERYONE},
    "metrics": {"GET": STAFF},  # or the bearer LIZZY_METRICS_TOKEN (a scraper, not a role)
    # the API's own description
    "schema": {"GET": SIGNED_IN},
    "api-docs": {"GET": SIGNED_IN},
    "api-root": {"GET": SIGNED_IN},
    # sessions
    "sessions_app:session-list": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:session-ref": {"POST": ("client", "viewer", "operator", "super")},  # phone in the body -> ref
    "sessions_app:session-detail": {
        "GET": ("client", "viewer", "operator", "super"),
        "PUT": ("client", "operator", "super"),
        "DELETE": OPERATORS,
    },
    "sessions_app:session-presence": {"GET": STAFF, "POST": STAFF, "DELETE": STAFF},
    "sessions_app:session-events": {"GET": STAFF},
    # the SMS webhook: no credentials, a valid X-Twilio-Signature instead (test_authentication_required.py)
    "sessions_app:sms-inbound": {"POST": EVERYONE},
    # CRM reads
    "sessions_app:crm-customer-list": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:crm-customer-transactions": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:crm-equipment-list": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:crm-part-list": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:crm-parts-order-list": {"GET": ("client", "viewer", "operator", "super")},
    "sessions_app:crm-service-request-list": {"GET": ("client", "viewer", "operator", "super")},
    # migrations
    "migrations:plan-list": {"GET": STAFF},
    "migrations:plan-detail": {"GET": STAFF},
    "migrations:plan-validate": {"POST": OPERATORS},
    # the admin's own pages
    "admin:login": {"GET": EVERYONE, "POST": EVERYONE},
    "admin:logout": {"POST": EVERYONE},
    "admin:index": {"GET": STAFF},
    "admin:app_list": {"GET": STAFF},
    "admin:jsi18n": {"GET": STAFF},
    "admin:password_change": {"GET": STAFF, "POST": STAFF},
    "admin:password_change_done": {"GET": STAFF},
    "admin:view_on_site": {"GET": STAFF},
    "admin:autocomplete": {"GET": NOBODY},  # without a field to complete, refused for everyone
    "admin:auth_user_password_change": {"GET": SUPER, "POST": SUPER},
    # ops console pages
    "admin:sessions_live_changelist": {"GET": STAFF, "POST": STAFF},  # POST: the search by phone
    "admin:sessions_live_detail": {"GET": STAFF},
    "admin:sessions_live_presence": {"POST": STAFF},
    "admin:sessions_live_action": {"GET": OPERATORS, "POST": OPERATORS},
    "admin:sessions_cache_entries": {"GET": STAFF, "POST": STAFF},  # POST: the Redis filter by phone prefix
    "admin:sessions_cache_invalidate": {"GET": OPERATORS, "POST": OPERATORS},
    "admin:lizzy_cost": {"GET": STAFF, "POST": OPERATORS},
    "admin:migration_app_migrationplan_progress": {"GET": STAFF},
    "admin:migration_app_migrationplan_console": {"POST": OPERATORS},
}

# Admin model pages: model -> who may view (changelist, change page, history), add, change (save), delete.
_LOOK = ("viewer", "operator", "super")
ADMIN_MODELS: dict[str, dict[str, tuple[str, ...]]] = {
    # sign-in material: superusers only
    "auth.user": {"view": SUPER, "add": SUPER, "change": SUPER, "delete": SUPER},
    "auth.group": {"view": SUPER, "add": SUPER, "change": SUPER, "delete": SUPER},
    "authtoken.tokenproxy": {"view": SUPER, "add": SUPER, "change": SUPER, "delete": SUPER},
    # Celery results may carry error text and arguments: superusers only
    "django_celery_results.taskresult": {"view": SUPER, "add": SUPER, "change": SUPER, "delete": SUPER},
    "django_celery_results.groupresult": {"view": SUPER, "add": SUPER, "change": SUPER, "delete": SUPER},
    # the beat schedule: staff look ("is beat running?"), superusers change
    "django_celery_beat.periodictask": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "django_celery_beat.intervalschedule": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "django_celery_beat.crontabschedule": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "django_celery_beat.solarschedule": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "django_celery_beat.clockedschedule": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    # cost
    "lizzy.capacityusage": {"view": _LOOK, "add": NOBODY, "change": NOBODY, "delete": SUPER},
    "lizzy.dynamodbpricing": {"view": _LOOK, "add": SUPER, "change": OPERATORS, "delete": SUPER},
    "lizzy.cachenodeprice": {"view": _LOOK, "add": SUPER, "change": OPERATORS, "delete": SUPER},
    # CRM
    "sessions_app.customer": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.equipment": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.equipmentmodel": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.part": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.transaction": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.partsorder": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.servicerequest": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.smscontact": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "sessions_app.handoffrequest": {"view": _LOOK, "add": SUPER, "change": OPERATORS, "delete": SUPER},
    # session store mode: superusers change it (add only while no row exists); history is append-only
    "sessions_app.sessionstoresetting": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": NOBODY},
    "sessions_app.sessionstoremodechange": {"view": _LOOK, "add": NOBODY, "change": NOBODY, "delete": NOBODY},
    # migrations: operators run the console (change); the plan's configuration is superuser-only
    "migration_app.migrationplan": {"view": _LOOK, "add": SUPER, "change": OPERATORS, "delete": SUPER},
    # a run is started from its plan (console, migrate_to_dynamodb), never added by hand
    "migration_app.migrationrun": {"view": _LOOK, "add": NOBODY, "change": SUPER, "delete": SUPER},
    "migration_app.validationreport": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "migration_app.backup": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    "migration_app.phasetransition": {"view": _LOOK, "add": SUPER, "change": SUPER, "delete": SUPER},
    # rows a run set aside: looked at and exported by staff, never added by hand
    "migration_app.quarantinedrow": {"view": _LOOK, "add": NOBODY, "change": SUPER, "delete": SUPER},
}

# Admin actions: model -> action -> roles offered it (and so able to run it). ``delete_selected`` follows
# the model's delete permission.
ADMIN_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "migration_app.migrationplan": {
        "advance_phase": OPERATORS,
        "rollback_phase": OPERATORS,
        "validate_now": OPERATORS,
        "catch_up_now": OPERATORS,
        "backup_now": OPERATORS,
    },
    "migration_app.migrationrun": {"resume_runs": OPERATORS},
    "sessions_app.handoffrequest": {"close_handoffs": OPERATORS},
    "migration_app.quarantinedrow": {"export_jsonl": _LOOK},
    "django_celery_beat.periodictask": {
        "enable_tasks": SUPER,
        "disable_tasks": SUPER,
        "toggle_tasks": SUPER,
        "run_tasks": SUPER,
    },
}


# Permissions that are not a page but what a page or an answer contains: permission -> roles that hold it.
# lizzy.read_customer_messages: what the customer wrote (turn text, problemDescription in sessionData, the
# messageLog's service-request effects, ServiceRequest.problem_description) in the session API, the CRM API,
# the live session page and the service-request list; everyone else gets it masked.
CONTENT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "lizzy.read_customer_messages": OPERATORS,
}


ROLE_TITLES = {"anon": "anonymous", "user": "signed in, no role", "client": "API client", "viewer": "viewer"}
ROLE_TITLES |= {"operator": "operator", "super": "superuser"}


def _who(roles: tuple[str, ...]) -> str:
    return ", ".join(roles) if roles else "nobody"


def markdown() -> str:
    """The three tables as docs/OPERATIONS.md shows them (the test checks the doc contains exactly this)."""
    lines = ["| route (URL name) | method | who gets an answer |", "|---|---|---|"]
    for name, methods in ROUTES.items():
        for method, roles in methods.items():
            lines.append(f"| `{name}` | {method} | {_who(roles)} |")
    lines += ["", "| admin model | view | add | change | delete |", "|---|---|---|---|---|"]
    for label, rights in ADMIN_MODELS.items():
        cells = " | ".join(_who(rights[kind]) for kind in ("view", "add", "change", "delete"))
        lines.append(f"| `{label}` | {cells} |")
    lines += ["", "| admin action | model | who may run it |", "|---|---|---|"]
    for label, actions in ADMIN_ACTIONS.items():
        for action, roles in actions.items():
            lines.append(f"| `{action}` | `{label}` | {_who(roles)} |")
    lines.append("| `delete_selected` | every model | the model's delete column |")
    return "\n".join(lines) + "\n"
