"""schemathesis against the OpenAPI schema, with token authentication, every operation.

Bounded for CI (a few examples per operation): 0 server errors, and every documented response body
matches its schema. The schema is generated in-process (the same one /api/schema/ serves to signed-in
callers) and requests go to the WSGI app directly.
"""

from __future__ import annotations

import functools

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

EVENTS_PATH = "/api/v1/events/sessions"
STREAM_READ_SECONDS = 0.2
MAX_EXAMPLES = 8  # per operation: enough to hit each validator, small enough for `make test`

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: the WSGI app must not close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def quick_event_polls(monkeypatch):
    """The stream polls Redis once a second for heartbeats; poll every 50 ms so each example is short."""
    from lizzy.redis import redis_subscribe

    monkeypatch.setattr(
        "sessions_app.services.events.redis_subscribe", functools.partial(redis_subscribe, poll_seconds=0.05)
    )


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_without_server_errors_and_matches_its_schema(
    case, api_token, dynamodb, keep_test_connection, quick_event_polls
):
    case.call_and_validate(
        headers={"Authorization": f"Token {api_token}"},
        checks=[not_a_server_error, response_schema_conformance],
        # The event stream stays open for ``seconds`` by design; schemathesis reads an event stream until
        # its timeout, so cut it after the first second: the events and their schema are all there by then.
        timeout=STREAM_READ_SECONDS if case.path == EVENTS_PATH else None,
    )
