"""Review of issue 18, finding 1, on the API: every endpoint by every role and method the walk does not use
(HEAD, OPTIONS), inactive users' tokens, a staff session without CSRF, throttling across one user's tokens,
presence for non-staff holders of the permission, and the migration endpoints' object checks.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.urls import get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from migration_app.models import MigrationPlan, ValidationReport
from tests.security import access_model
from tests.security.test_authentication_required import _walk
from tests.security.test_permission_model import (  # noqa: F401
    _concrete,
    refused,
    role_clients,
    role_users,
    sample_objects,
)

pytestmark = pytest.mark.django_db


def _api_paths():
    for pattern, name in _walk(get_resolver().url_patterns):
        if name in access_model.ROUTES and pattern.startswith("api/") and name != "sessions_app:sms-inbound":
            yield name, _concrete(pattern, name)


def test_head_and_options_answer_only_the_roles_that_may_get(role_clients, sample_objects):  # noqa: F811
    wrong = []
    for name, path in _api_paths():
        allowed = set(access_model.ROUTES[name].get("GET", ()))
        if name == "sessions_app:session-events":
            continue  # a stream: test_event_stream_limits.py
        for method in ("head", "options"):
            for role in access_model.ROLES:
                response = getattr(role_clients[role], method)(path)
                answered = not refused(response) and response.status_code not in (404, 405)
                if answered and role not in allowed:  # HEAD and OPTIONS need what GET needs
                    wrong.append(f"{role} answered {method.upper()} {path} -> {response.status_code}")
    assert wrong == []


def test_an_inactive_users_token_is_refused_everywhere(role_users, role_clients, sample_objects):  # noqa: F811
    operator = role_users["operator"]
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=operator).key}")
    for name, path in _api_paths():
        assert client.get(path).status_code in (401, 403), name
        assert client.delete(path).status_code in (401, 403, 405), name


def test_a_staff_session_cannot_write_through_the_api_without_csrf(role_users, sample_objects, dynamodb):  # noqa: F811
    from tests.sessions_app.factories import SEED_PHONE

    client = APIClient(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(role_users["operator"])
    path = f"/api/v1/sessions/{SEED_PHONE}"
    assert client.get(path).status_code == 200
    assert client.delete(path).status_code == 403
    assert client.put(path, {"currentNode": "MAIN_MENU"}, format="json", HTTP_IF_MATCH="*").status_code == 403
    plan = MigrationPlan.objects.get(name="walk-plan")
    assert client.post(f"/api/v1/migrations/plans/{plan.name}/validate/").status_code == 403
    assert client.get(path).status_code == 200  # still there


def test_one_users_clients_share_one_throttle_budget(role_users, settings, db):  # noqa: F811
    settings.LIZZY_API_THROTTLE_RATE = "4/min"
    caches[settings.SHARED_CACHE].clear()
    user = role_users["client"]
    key = Token.objects.get_or_create(user=user)[0].key
    statuses = []
    for _ in range(6):  # a fresh client (connection) each time: the budget is the user's, not the client's
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        statuses.append(client.get("/api/v1/crm/customers/").status_code)
    assert statuses[:4] == [200] * 4
    assert statuses[4:] == [429, 429]


def test_presence_names_staff_only_to_staff_even_with_the_permission(db, sample_objects):  # noqa: F811
    from django.contrib.auth import get_user_model

    from tests.sessions_app.factories import SEED_PHONE

    outsider = get_user_model().objects.create_user(username="r18-outsider", password="x" * 20)
    outsider.user_permissions.add(Permission.objects.get(codename="view_live_sessions"))
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=outsider).key}")
    path = f"/api/v1/sessions/{SEED_PHONE}/presence"
    assert [client.get(path).status_code, client.post(path).status_code] == [403, 403]


def test_validate_by_a_role_without_the_permission_queues_nothing(role_clients, sample_objects, monkeypatch):  # noqa: F811
    queued = []
    monkeypatch.setattr("migration_app.tasks.validate_task.delay", lambda *a, **k: queued.append(a))
    monkeypatch.setattr("migration_app.tasks.validate_task.apply_async", lambda *a, **k: queued.append(a))
    for role in ("anon", "user", "client", "viewer"):
        response = role_clients[role].post("/api/v1/migrations/plans/walk-plan/validate/")
        assert refused(response), (role, response.status_code)
    assert queued == []
    assert not ValidationReport.objects.exists()


def test_a_plan_detail_does_not_leak_the_source_password(role_clients, db):  # noqa: F811
    MigrationPlan.objects.create(
        name="r18-secret-url", source_url="postgres://crm:planted-password-777@db.internal/crm", mapping={}
    )
    for role in ("viewer", "operator", "super"):
        for path in ("/api/v1/migrations/plans/", "/api/v1/migrations/plans/r18-secret-url/"):
            response = role_clients[role].get(path)
            assert response.status_code == 200, (role, path)
            assert "planted-password-777" not in response.content.decode(), (role, path)
