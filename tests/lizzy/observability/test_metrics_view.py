import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from lizzy.dynamodb import dynamodb_get_item
from lizzy.tables import SESSIONS

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-for-tests"


def test_metrics_is_closed_to_anonymous_callers_with_or_without_a_token(client, settings):
    settings.LIZZY_METRICS_TOKEN = None
    assert client.get("/metrics").status_code == 401
    settings.LIZZY_METRICS_TOKEN = TOKEN
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_a_scraper_with_the_token_gets_request_and_dynamodb_metrics(client, settings, dynamodb):
    settings.LIZZY_METRICS_TOKEN = TOKEN
    client.get("/healthz")
    dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"})

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'lizzy_http_request_seconds_count{method="GET",status="200",view="healthz"}' in text
    assert f'lizzy_dynamodb_call_seconds_count{{operation="GetItem",table="{SESSIONS.name}"}}' in text
    assert "lizzy_dynamodb_consumed_capacity_units_total" in text


def test_staff_may_look_from_the_browser_but_other_users_may_not(settings, ops_admin_client):
    settings.LIZZY_METRICS_TOKEN = TOKEN
    assert ops_admin_client.get("/metrics").status_code == 200
    plain = Client()
    plain.force_login(get_user_model().objects.create_user(username="customer", password="x-long-password-1"))
    assert plain.get("/metrics").status_code == 403
