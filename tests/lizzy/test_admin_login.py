import pytest
from django.core.cache import cache

from lizzy.admin_login import ERR_LOCKED_OUT
from tests.fixtures.admin import STAFF_PASSWORD

pytestmark = pytest.mark.django_db
LOGIN_URL = "/admin/login/"


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def sign_in(client, password):
    return client.post(LOGIN_URL, {"username": "ops-admin", "password": password, "next": "/admin/"})


def test_staff_sign_in_reaches_the_dashboard(client, ops_admin):
    response = sign_in(client, STAFF_PASSWORD)
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_repeated_failures_lock_the_account_out_even_with_the_right_password(client, ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_LOGIN_LOCKOUT_SECONDS = 600
    for _ in range(3):
        assert sign_in(client, "wrong-password").status_code == 200

    response = sign_in(client, STAFF_PASSWORD)

    assert response.status_code == 200  # the form again, not a redirect into the admin
    assert ERR_LOCKED_OUT % {"minutes": 10} in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_clears_the_count(client, ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    sign_in(client, "wrong-password")
    sign_in(client, "wrong-password")
    assert sign_in(client, STAFF_PASSWORD).status_code == 302
    client.logout()
    sign_in(client, "wrong-password")
    sign_in(client, "wrong-password")
    assert sign_in(client, STAFF_PASSWORD).status_code == 302


def test_non_staff_users_cannot_use_the_admin(client, django_user_model):
    django_user_model.objects.create_user(username="ops-admin", password=STAFF_PASSWORD)
    assert sign_in(client, STAFF_PASSWORD).status_code == 200
    assert client.get("/admin/").status_code == 302
