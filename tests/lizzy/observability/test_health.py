import pytest
from moto import mock_aws

from lizzy.dynamodb import reset_client
from lizzy.observability import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_authentication(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_and_sessions_table_answer(client, dynamodb):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["dynamodb"]["ok"] is True


def test_readyz_is_503_when_the_sessions_table_is_missing(client):
    with mock_aws():
        reset_client()  # an account with no tables at all
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["dynamodb"] == {
        "ok": False,
        "duration_ms": body["checks"]["dynamodb"]["duration_ms"],
        "error": health.ERR_TABLE_MISSING,
    }
    assert body["checks"]["database"]["ok"] is True


def test_readyz_names_the_error_class_but_never_the_endpoint(client, dynamodb, settings):
    # given Redis configured at an address where nothing listens
    secret_url = "redis://:hunter2-secret@127.0.0.1:1/6"
    settings.REDIS_URL = secret_url
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": secret_url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert "hunter2" not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


def test_readyz_checks_real_redis_and_broker_when_configured(client, dynamodb, settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CELERY_BROKER_URL = redis_url
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}}
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


def test_local_brokers_are_not_checked(settings):
    settings.CELERY_BROKER_URL = "memory://"
    settings.REDIS_URL = None
    assert set(health.readiness_checks()) == {"database", "dynamodb"}
