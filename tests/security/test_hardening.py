"""Issue 18's smaller findings, each a test that failed before the fix: API throttling, /readyz cost, JSON depth,
DynamoDB error text, the published secret key, the proxy header, the CSP, the unknown plan's 404, secrets in
error text that reaches people."""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import quote

import pytest
from django.core.cache import caches
from django.urls import reverse

from lizzy.observability import health
from lizzy.parsers import ERR_TOO_DEEP, MAX_JSON_DEPTH, json_depth
from lizzy.scrub import REPLACEMENT, exception_scrub, secrets_forget, secrets_scrub, url_display
from migration_app.models import MigrationPlan
from tests.figures import record_figure as record
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.lizzy.test_settings import run_manage
from tests.security.test_production_settings import PRODUCTION_ENV
from tests.sessions_app.factories import SEED_PHONE, seed_session_document

SESSION_URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"
MOTO_HTML = "<html><body><h1>Internal Server Error</h1> arn:aws:iam::123456789012:role/lizzy-web</body></html>"


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def nested_text(depth: int) -> str:
    """JSON text ``depth`` objects deep (built as text: json.dumps itself overflows beyond ~1000)."""
    return '{"n":' * (depth - 1) + "{}" + "}" * (depth - 1)


# --- JSON depth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5000])
def test_json_nested_deeper_than_dynamodb_allows_is_a_400_and_writes_nothing(dynamodb, api_client, depth):
    body = '{"sessionData":' + nested_text(depth - 1) + "}"  # the body's own object is level 1
    response = api_client.put(SESSION_URL, body, content_type="application/json")
    assert response.status_code == 400  # was 500 at 500 levels (and a RecursionError beyond ~1000)
    assert response.json()["error"]["message"] == ERR_TOO_DEEP
    assert api_client.get(SESSION_URL).status_code == 404
    record("json_depth", depth=depth, status=response.status_code)


def test_json_at_exactly_the_limit_is_accepted(dynamodb, api_client, seed_customer):
    document = seed_session_document()
    document["sessionData"]["deep"] = nested(MAX_JSON_DEPTH - 2)  # body (1) > sessionData (2) > deep ... = 32
    assert json_depth(document) == MAX_JSON_DEPTH
    response = api_client.put(SESSION_URL, document, format="json")
    assert response.status_code == 201, response.content


def test_json_depth_counts_lists_and_objects():
    assert json_depth(1) == 0
    assert json_depth([]) == 1
    assert json_depth({"a": [{"b": []}]}) == 4


# --- DynamoDB error text --------------------------------------------------------------------------


def test_dynamodb_error_details_are_logged_not_returned(dynamodb, api_client, caplog):
    def fail(operation, params, send):
        raise client_error("InternalServerError", MOTO_HTML, operation)

    with fault_injection(fail), caplog.at_level(logging.WARNING, logger="lizzy.errors"):
        response = api_client.get(SESSION_URL)
    body = response.json()
    assert response.status_code == 502
    assert body["error"]["code"] == "dynamodb_error"
    assert "<html>" not in response.content.decode()
    assert "arn:aws" not in response.content.decode()
    assert body["error"]["details"] == {"code": "InternalServerError"}
    assert any("arn:aws:iam::123456789012" in record.getMessage() for record in caplog.records)


# --- API throttling -------------------------------------------------------------------------------


def test_an_api_token_is_throttled_and_told_when_to_come_back(dynamodb, api_client, settings):
    settings.LIZZY_API_THROTTLE_RATE = "5/min"
    caches[settings.SHARED_CACHE].clear()
    statuses = [api_client.get(SESSION_URL).status_code for _ in range(7)]
    assert statuses == [404] * 5 + [429, 429]
    refused = api_client.get(SESSION_URL)
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    record("api_throttle", rate="5/min", requests=8, refused=3)


def test_the_signed_webhook_is_never_throttled(dynamodb, anonymous_client, settings, db):
    settings.LIZZY_API_THROTTLE_RATE = "1/min"
    settings.TWILIO_AUTH_TOKEN = None  # unsigned posts accepted (local settings' behaviour)
    caches[settings.SHARED_CACHE].clear()
    for index in range(3):
        response = anonymous_client.post(
            "/api/v1/sms/inbound",
            f"From=%2B12065550100&Body=MENU&MessageSid=SMthrottle{index}",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200


# --- /readyz ----------------------------------------------------------------------------------------


def test_readyz_runs_its_checks_at_most_once_per_cache_period(client, dynamodb, settings):
    settings.LIZZY_READYZ_CACHE_SECONDS = 60.0
    health.readiness_forget()
    runs = []
    original = health.readiness_run

    def counting(**kwargs):
        runs.append(1)
        return original(**kwargs)

    health.readiness_run = counting
    try:
        statuses = [client.get("/readyz").status_code for _ in range(20)]
    finally:
        health.readiness_run = original
        health.readiness_forget()
    assert len(set(statuses)) == 1
    assert len(runs) == 1  # was 20: a database query, a DescribeTable and a broker connection per call
    record("readyz_cache", calls=20, check_runs=len(runs))


# --- production settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["lizzy-local-development-key-not-for-production-use", "lizzy-test-key", "django-insecure-" + "x" * 40]
)
def test_production_refuses_the_published_development_keys(key):
    result = run_manage("check", **{**PRODUCTION_ENV, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a key published in this repository" in result.stderr


DUMP_PROXY = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.REST_FRAMEWORK.get('NUM_PROXIES')]))"
)


def test_the_proxy_ssl_header_is_trusted_only_when_a_trusted_proxy_is_configured():
    plain = run_manage("shell", "-c", DUMP_PROXY, **PRODUCTION_ENV)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == [None, None]
    behind = run_manage("shell", "-c", DUMP_PROXY, **PRODUCTION_ENV, LIZZY_TRUSTED_PROXY_HOPS="1")
    assert json.loads(behind.stdout.strip().splitlines()[-1]) == [["HTTP_X_FORWARDED_PROTO", "https"], 1]


# --- Content-Security-Policy --------------------------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_admin_pages_and_the_api_docs_carry_a_self_only_policy(ops_admin_client, dynamodb):
    for path in ("/admin/", "/admin/login/", "/api/docs/", "/admin/migration_app/migrationplan/"):
        policy = _policy(ops_admin_client.get(path))
        assert policy, f"{path}: no Content-Security-Policy"
        assert policy["default-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in policy["script-src"]
        assert "'unsafe-eval'" not in policy["script-src"]
        sources = [source for values in policy.values() for source in values]
        assert not [source for source in sources if "://" in source or source.endswith(".com")], sources


def test_the_api_docs_page_has_no_inline_script(ops_admin_client):
    page = ops_admin_client.get("/api/docs/").content.decode()
    assert "<script>" not in page  # the initialiser is its own request (?script), allowed by 'self'
    script = ops_admin_client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_the_consoles_inline_scripts_carry_the_requests_nonce(ops_admin_client, dynamodb):
    plan = MigrationPlan.objects.create(name="csp-plan", source_url="sqlite:///x.sqlite3", mapping={})
    response = ops_admin_client.get(reverse("admin:migration_app_migrationplan_change", args=[plan.pk]))
    nonce = [source for source in _policy(response)["script-src"] if source.startswith("'nonce-")]
    assert len(nonce) == 1
    assert f'<script nonce="{nonce[0][7:-1]}">' in response.content.decode()


# --- the unknown plan's 404 ------------------------------------------------------------------------------


def test_an_unknown_plans_404_names_only_what_was_asked_for(api_client, db):
    MigrationPlan.objects.create(name="secret-acquisition-import", source_url="sqlite:///x", mapping={})
    for method, path in (
        ("get", "/api/v1/migrations/plans/nope/"),
        ("post", "/api/v1/migrations/plans/nope/validate/"),
    ):
        response = getattr(api_client, method)(path)
        assert response.status_code == 404
        assert "secret-acquisition-import" not in response.content.decode()
        assert "nope" in response.json()["error"]["message"]


# --- secrets in error text -------------------------------------------------------------------------------


@pytest.fixture
def planted_secrets(monkeypatch, settings):
    monkeypatch.setenv("LIZZY_PLANTED_TOKEN", "planted-token-value-0123456789")
    monkeypatch.setenv("SOURCE_DATABASE_URL", "postgres://lizzy:planted-db-password@db.internal:5432/crm")
    settings.TWILIO_AUTH_TOKEN = "planted-twilio-auth-token-abcdef"  # noqa: S105 - a test value
    secrets_forget()
    yield
    secrets_forget()


def test_the_scrubber_removes_secret_values_environment_dumps_and_url_passwords(planted_secrets, settings):
    environ_dump = "\x00".join(f"{name}={value}" for name, value in os.environ.items())
    text = (
        f"Conversion Error: could not convert string '{environ_dump}' to INT32; "
        f"key={settings.SECRET_KEY} twilio={settings.TWILIO_AUTH_TOKEN} "
        "url=mysql://app:hunter2-password@10.0.0.5/shop"
    )
    scrubbed = secrets_scrub(text)
    for secret in (
        settings.SECRET_KEY,
        "planted-twilio-auth-token-abcdef",
        "planted-token-value-0123456789",
        "planted-db-password",
        "hunter2-password",
    ):
        assert secret not in scrubbed
    assert REPLACEMENT in scrubbed
    assert "Conversion Error" in scrubbed  # the message itself stays readable


def test_a_failed_tasks_exception_and_its_causes_are_scrubbed(planted_secrets):
    inner = ValueError("read planted-token-value-0123456789 from /proc/self/environ")
    outer = RuntimeError("source failed: TWILIO=planted-twilio-auth-token-abcdef")
    outer.__cause__ = inner
    exception_scrub(outer)
    assert "planted" not in str(outer)
    assert "planted" not in str(inner)


def test_a_celery_task_result_never_stores_a_secret(planted_secrets, db, settings):
    from celery import shared_task
    from django_celery_results.models import TaskResult

    @shared_task(name="tests.leaky_task")
    def leaky_task():
        raise ValueError("environ: LIZZY_PLANTED_TOKEN=" + os.environ["LIZZY_PLANTED_TOKEN"])

    settings.CELERY_TASK_ALWAYS_EAGER = False
    result = leaky_task.apply(task_id="leaky-1", throw=False)  # runs here, through the product's task class
    assert result.failed()
    assert "planted" not in repr(result.result)
    assert "planted" not in (result.traceback or "")
    stored = TaskResult.objects.filter(task_id="leaky-1").first()
    if stored is not None:
        assert "planted" not in (stored.result or "") + (stored.traceback or "")


def test_url_display_masks_passwords_and_secret_parameters():
    assert url_display("postgres://app:pw-123456@db:5432/crm") == f"postgres://app:{REPLACEMENT}@db:5432/crm"
    assert "s3cr3t" not in url_display("duckdb:///x.duckdb?token=s3cr3t&mode=ro")
