"""Every URL of the URLconf and every admin action, as every role, against the written permission model.

The model is ``tests/security/access_model.py`` (mirrored by docs/OPERATIONS.md, "Permission model"). For
each route and method a role is either *answered* (anything but 401/403 or the admin's redirect to its
sign-in page) or *refused*. 404 and 405 are neutral for a role that may call the route (nothing of that name,
or a method the route does not serve) and count as an answer for one that may not only when the route is
not in the model at all. A route, model admin or admin action missing from the model fails the walk.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import get_resolver
from django_celery_results.models import GroupResult, TaskResult
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from lizzy.phone import phone_ref
from lizzy.roles import API_CLIENT_GROUP, OPERATOR_GROUP, VIEWER_GROUP
from migration_app.models import MigrationPlan, MigrationRun, Phase, PhaseTransition
from sessions_app.models import HandoffRequest
from sessions_app.services.sessions import session_new, session_save
from tests.figures import record_figure
from tests.security import access_model
from tests.security.test_authentication_required import _walk
from tests.sessions_app.factories import SEED_PHONE

ROOT = Path(__file__).resolve().parents[2]
API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MODEL_VIEWS = ("changelist", "add", "change", "delete", "history")
SAMPLES = {"phone": SEED_PHONE, "customer_id": "CUST123", "name": "no-such-plan", "content_type_id": "1"}
SAMPLE_ACTIONS = {"admin:sessions_live_action": "expire", "admin:migration_app_migrationplan_console": "pause"}
# Answer everyone by design, checked elsewhere: the webhook by signature (test_authentication_required.py),
# sign-out (it would end the walk's own sessions).
NOT_WALKED = {"sessions_app:sms-inbound", "admin:logout"}
PASSWORD = "a-long-test-password-for-roles-1"  # noqa: S105 - test users only


def _user(username: str, *, staff: bool = False, group: str | None = None, superuser: bool = False):
    users = get_user_model().objects
    if superuser:
        return users.create_superuser(username=username, password=PASSWORD)
    user = users.create_user(username=username, password=PASSWORD, is_staff=staff)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def role_users(db) -> dict[str, object]:
    return {
        "user": _user("role-user"),
        "client": _user("role-client", group=API_CLIENT_GROUP),
        "viewer": _user("role-viewer", staff=True, group=VIEWER_GROUP),
        "operator": _user("role-operator", staff=True, group=OPERATOR_GROUP),
        "super": _user("role-super", superuser=True),
    }


@pytest.fixture
def role_clients(role_users) -> dict[str, APIClient]:
    """Each role's client: its API token for /api/, its admin session for the admin."""
    clients = {"anon": APIClient(raise_request_exception=False)}
    for role, user in role_users.items():
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        client.force_login(user)
        clients[role] = client
    return clients


@pytest.fixture
def sample_objects(db, dynamodb, role_users):
    """One row per model the walk opens (so change and history pages are real), and a live session."""
    plan = MigrationPlan.objects.create(name="walk-plan", source_url="sqlite:///nowhere.sqlite3", mapping={})
    MigrationRun.objects.create(plan=plan)
    PhaseTransition.objects.create(plan=plan, from_phase=Phase.SETUP, to_phase=Phase.SETUP, actor_name="walk")
    HandoffRequest.objects.create(phone=SEED_PHONE, node="MAIN_MENU")
    TaskResult.objects.create(task_id="walk-task", status="FAILURE", result='{"exc_message": ["walk"]}')
    GroupResult.objects.create(group_id="walk-group")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    return plan


def refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "/login/" in response.headers.get("Location", "")


def _object_id(model) -> str:
    # DRF's token admin addresses a token by its user's id
    field = "user_id" if model._meta.label_lower == "authtoken.tokenproxy" else "pk"
    first = model._default_manager.order_by("pk").values_list(field, flat=True).first()
    return str(first) if first is not None else "999999"


def _concrete(pattern: str, name: str | None, model=None) -> str:
    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key == "object_id":
            return _object_id(model) if model is not None else "1"
        if key == "action":
            return SAMPLE_ACTIONS.get(name, "x")
        if key == "ref":  # a live session's opaque reference (admin URLs never carry the phone)
            return phone_ref(SEED_PHONE)
        return SAMPLES.get(key, "1")

    path = re.sub(r"<(?:\w+:)?(\w+)>", fill, pattern)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "auth" if m.group(1) == "app_label" else "x", path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")


def _model_routes() -> dict[str, tuple[str, str]]:
    """``admin:<app>_<model>_<view>`` -> (model label, view) for every registered model admin."""
    routes = {}
    for model in admin.site._registry:
        for view in MODEL_VIEWS:
            routes[f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"] = (model._meta.label_lower, view)
    return routes


def _expected_for_model(label: str, view: str) -> dict[str, tuple[str, ...]]:
    rights = access_model.ADMIN_MODELS[label]
    looking = tuple(sorted(set(rights["view"]) | set(rights["change"])))
    return {
        "changelist": {"GET": looking},  # a POST runs an action: the action walk below
        "add": {"GET": rights["add"], "POST": rights["add"]},
        "change": {"GET": looking, "POST": rights["change"]},
        "delete": {"GET": rights["delete"], "POST": rights["delete"]},
        "history": {"GET": looking},
    }[view]


def test_every_route_answers_exactly_the_roles_the_model_names(role_clients, sample_objects, settings):
    settings.TWILIO_AUTH_TOKEN = "walk-token-not-a-secret"  # noqa: S105 - the webhook refuses unsigned posts
    models = {model._meta.label_lower: model for model in admin.site._registry}
    model_routes = _model_routes()
    unregistered_models = sorted(set(models) - set(access_model.ADMIN_MODELS))
    assert unregistered_models == [], "model admins missing from tests/security/access_model.py ADMIN_MODELS"

    missing, wrong, walked = [], [], 0
    for pattern, name in sorted(set(_walk(get_resolver().url_patterns)), key=lambda row: row[0]):
        model = None
        if name in model_routes:
            label, view = model_routes[name]
            model = models[label]
            expected = _expected_for_model(label, view)
        elif name is None and pattern.endswith("<path:object_id>/"):
            # the admin's redirect from ``<model>/<id>/`` to its change page
            label = ".".join(pattern.split("/")[1:3])
            model = models.get(label)
            expected = {"GET": access_model.STAFF}
        elif name is None:
            expected = {"GET": access_model.STAFF}  # the admin's catch-all: 404 for staff, sign-in for others
        elif name in access_model.ROUTES:
            expected = access_model.ROUTES[name]
            model = models.get(".".join(pattern.split("/")[1:3]))  # a model's own page: use a real row
        else:
            missing.append(f"{name} ({pattern})")
            continue
        if name in NOT_WALKED:
            continue
        path = _concrete(pattern, name, model)
        # The admin's views do not tell methods apart beyond GET/POST: walk the methods the model names.
        # The API's views do: walk every method, so one a view should not serve is seen answering.
        methods = tuple(expected) if pattern.startswith(settings.LIZZY_ADMIN_URL) else API_METHODS
        for method in methods:
            allowed = set(expected.get(method, ()))
            for role in access_model.ROLES:
                response = getattr(role_clients[role], method.lower())(path)
                walked += 1
                status = response.status_code
                if role in allowed and refused(response):
                    wrong.append(f"{role} refused: {method} {path} ({name}) -> {status}")
                elif role not in allowed and not refused(response) and status not in (404, 405):
                    wrong.append(f"{role} answered: {method} {path} ({name}) -> {status}")
                elif role not in allowed and method in expected and status in (404, 405) and role != "anon":
                    wrong.append(f"{role} got {status}, not a refusal: {method} {path} ({name})")
    record_figure("permission_walk", requests=walked, differences=len(wrong), missing=len(missing))
    assert missing == [], "routes missing from tests/security/access_model.py ROUTES"
    assert walked > 1500
    assert wrong == [], "\n".join(wrong)


def test_every_admin_action_is_offered_exactly_to_the_roles_the_model_names(role_users, rf: RequestFactory):
    wrong = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        declared = dict(access_model.ADMIN_ACTIONS.get(label, {}))
        declared["delete_selected"] = access_model.ADMIN_MODELS[label]["delete"]
        request = rf.get("/")
        request.user = role_users["super"]
        offered_to_super = set(model_admin.get_actions(request))
        assert offered_to_super - set(declared) == set(), f"{label}: actions missing from ADMIN_ACTIONS"
        for role, user in role_users.items():
            request = rf.get("/")
            request.user = user
            offered = set(model_admin.get_actions(request)) if user.is_staff else set()
            expected = {action for action, roles in declared.items() if role in roles and action in offered_to_super}
            if offered != expected:
                wrong.append(f"{label} {role}: offered {sorted(offered)}, model says {sorted(expected)}")
    assert wrong == []


def test_every_product_admin_action_declares_its_permission():
    undeclared = []
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            function = action if callable(action) else getattr(type(model_admin), action)
            if not getattr(function, "allowed_permissions", None):
                undeclared.append(f"{model._meta.label_lower}.{getattr(function, '__name__', action)}")
    assert undeclared == []


def test_a_viewer_posting_a_rollback_changes_nothing(role_clients, sample_objects):
    """Finding 2: two rollbacks by a viewer deleted every migrated item. Now the action is not theirs."""
    plan = sample_objects
    plan.phase = Phase.BACKFILL
    plan.save(update_fields=["phase"])
    url = "/admin/migration_app/migrationplan/"
    for _ in range(2):
        response = role_clients["viewer"].post(url, {"action": "rollback_phase", "_selected_action": [plan.pk]})
        assert response.status_code == 200  # the changelist again, with "No action selected."
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL
    assert not PhaseTransition.objects.filter(plan=plan, rollback=True).exists()


def test_the_doc_mirrors_the_model():
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert access_model.markdown() in doc, "docs/OPERATIONS.md's permission tables differ: paste markdown()"


def test_every_content_permission_is_held_exactly_by_the_roles_the_model_names(role_users):
    for permission, roles in access_model.CONTENT_PERMISSIONS.items():
        holders = {role for role, user in role_users.items() if user.has_perm(permission)}
        assert holders == set(roles), (permission, sorted(holders))
