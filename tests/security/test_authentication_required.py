"""Every URL, from the OpenAPI schema and from the URLconf, refuses a caller without credentials.

Only the health checks and the SMS webhook (which checks Twilio's signature instead) answer anonymous
callers, plus the admin's own sign-in pages. A new endpoint that forgets its permission fails here.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from lizzy.dynamodb import reset_client

# Answer anonymous callers on purpose: probes, the signed webhook, the admin's sign-in and sign-out.
PUBLIC_NAMES = {"healthz", "readyz", "sessions_app:sms-inbound", "admin:login", "admin:logout"}
SAMPLE_VALUES = {"phone": "+12065550100", "customer_id": "CUST123", "object_id": "1", "app_label": "auth"}
METHODS = ("get", "post", "put", "patch", "delete")


def _walk(resolvers, prefix="", namespace=""):
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}" if entry.name else None


def _concrete(pattern: str) -> str:
    """A request path for a route or regex pattern, converters filled with sample values."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_VALUES.get(m.group(1), "1"), pattern)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE_VALUES.get(m.group(1), "auth"), path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")


def url_patterns() -> list[tuple[str, str | None]]:
    return sorted(set(_walk(get_resolver().url_patterns)), key=lambda row: row[0])


def refused(response) -> bool:
    """401/403, or the admin's redirect to its sign-in page."""
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "/login/" in response.headers.get("Location", "")


@pytest.fixture
def signed_webhook(settings):
    settings.TWILIO_AUTH_TOKEN = "a-test-token-not-a-secret"  # noqa: S105


def test_every_urlconf_route_refuses_anonymous_callers(anonymous_client, dynamodb, signed_webhook, db):
    answered = []
    routes = url_patterns()
    assert len(routes) > 20, "the URLconf walk found too few routes to be walking the real one"
    for pattern, name in routes:
        if name in PUBLIC_NAMES:
            continue
        path = _concrete(pattern)
        for method in METHODS:
            response = getattr(anonymous_client, method)(path)
            if response.status_code in (404, 405):
                continue  # no such object or method: nothing answered
            if not refused(response):
                answered.append(f"{method.upper()} {path} ({name}) -> {response.status_code}")
    assert answered == []


def test_every_schema_operation_refuses_anonymous_callers(api_client, anonymous_client, dynamodb, signed_webhook):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answered = []
    operations = 0
    for template, item in schema["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_VALUES.get(m.group(1), "1"), template)
        for method in METHODS:
            if method not in item:
                continue
            operations += 1
            response = getattr(anonymous_client, method)(path)
            if item[method].get("operationId") == "sms_inbound":
                assert response.status_code in (403, 415), "the webhook accepted an unsigned request"
                continue
            if not refused(response):
                answered.append(f"{method.upper()} {path} -> {response.status_code}")
    assert operations >= 8
    assert answered == []


def test_the_schema_and_the_api_docs_need_credentials(anonymous_client, db):
    assert anonymous_client.get("/api/schema/").status_code in (401, 403)
    assert anonymous_client.get("/api/docs/").status_code in (401, 403)


def test_the_unsigned_webhook_is_refused_when_a_token_is_configured(anonymous_client, dynamodb, signed_webhook):
    response = anonymous_client.post(
        "/api/v1/sms/inbound",
        "From=%2B12065550100&Body=MENU&MessageSid=SM1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"


def test_the_health_checks_answer_without_credentials(anonymous_client, dynamodb, db):
    reset_client()
    assert anonymous_client.get("/healthz").status_code == 200
    assert anonymous_client.get("/readyz").status_code in (200, 503)  # it answers; readiness is its own test
