import time

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.test import Client

from lizzy.admin_login import DEVICE_COOKIE, ERR_LOCKED_OUT, ERR_THROTTLE_UNAVAILABLE, LOCK_KEY, _hashed
from tests.fixtures.admin import STAFF_PASSWORD
from tests.fixtures.dynamodb_hooks import client_error, fault_injection

pytestmark = pytest.mark.django_db
LOGIN_URL = "/admin/login/"


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    caches[settings.SHARED_CACHE].clear()
    yield
    caches[settings.SHARED_CACHE].clear()


def sign_in(client, password, username="ops-admin", **headers):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, **headers)


def sign_out(client) -> None:
    """Sign out but keep the browser's cookies (``Client.logout()`` would drop the device cookie too)."""
    assert DEVICE_COOKIE in client.cookies
    client.post("/admin/logout/")
    assert "_auth_user_id" not in client.session


def locked(response) -> bool:
    return response.status_code == 200 and "Too many failed sign-in attempts" in response.content.decode()


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


def test_a_stranger_failing_on_an_account_does_not_lock_out_its_owner_on_a_known_browser(ops_admin, settings):
    """Finding 5: five failures locked any named account for everyone. Now only for unknown clients."""
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    owner = Client()
    assert sign_in(owner, STAFF_PASSWORD).status_code == 302  # the owner's browser is now a known device
    sign_out(owner)
    attacker = Client()
    for _ in range(5):
        sign_in(attacker, "wrong-password")

    assert locked(sign_in(attacker, STAFF_PASSWORD))  # an unknown client: locked even with the password
    assert locked(sign_in(Client(), STAFF_PASSWORD))
    assert sign_in(owner, STAFF_PASSWORD).status_code == 302  # the owner's browser: in


def test_a_known_browser_has_its_own_limit(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    owner = Client()
    sign_in(owner, STAFF_PASSWORD)
    sign_out(owner)
    for _ in range(3):
        sign_in(owner, "wrong-password")
    assert locked(sign_in(owner, STAFF_PASSWORD))
    assert sign_in(Client(), STAFF_PASSWORD).status_code == 302  # other clients were not counted against


def test_a_device_cookie_of_another_account_or_forged_counts_for_nothing(ops_admin, django_user_model, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 2
    django_user_model.objects.create_user(username="other", password=STAFF_PASSWORD, is_staff=True)
    other = Client()
    assert sign_in(other, STAFF_PASSWORD, username="other").status_code == 302
    forged = Client()
    forged.cookies[DEVICE_COOKIE] = "not-signed"
    for _ in range(2):
        sign_in(Client(), "wrong-password")
    assert locked(sign_in(other, STAFF_PASSWORD))  # other's cookie is not ops-admin's device
    assert locked(sign_in(forged, STAFF_PASSWORD))


def test_failures_from_one_address_behind_the_load_balancer_do_not_lock_other_addresses(ops_admin, settings):
    """Finding 5: twenty failures from one address locked everyone, and behind a load balancer every request
    comes from its address. With the proxy hop configured, the client's own address is counted."""
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_TRUSTED_PROXY_HOPS = 1
    attacker = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}  # the balancer's address
    for index in range(12):
        sign_in(Client(), "wrong-password", username=f"guess-{index}", **attacker)
    assert locked(sign_in(Client(), STAFF_PASSWORD, **attacker))  # the guesser's address is throttled
    colleague = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "REMOTE_ADDR": "10.0.0.2"}
    assert sign_in(Client(), STAFF_PASSWORD, **colleague).status_code == 302


def test_a_forged_forwarded_for_does_not_escape_the_address_throttle(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_TRUSTED_PROXY_HOPS = 1
    for index in range(12):  # the client writes its own entry first; the balancer appends the real one
        headers = {"HTTP_X_FORWARDED_FOR": f"192.0.2.{index}, 203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}
        sign_in(Client(), "wrong-password", username=f"guess-{index}", **headers)
    assert locked(sign_in(Client(), STAFF_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.9"))


def test_without_a_trusted_proxy_forwarded_for_is_ignored(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_TRUSTED_PROXY_HOPS = 0
    for index in range(12):
        sign_in(Client(), "wrong-password", username=f"guess-{index}", HTTP_X_FORWARDED_FOR=f"192.0.2.{index}")
    assert locked(sign_in(Client(), STAFF_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200"))


def test_each_lockout_reached_again_lasts_twice_as_long(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 2
    settings.LIZZY_LOGIN_LOCKOUT_SECONDS = 60
    shared = caches[settings.SHARED_CACHE]
    lock = LOCK_KEY.format(value=_hashed("ops-admin"))
    lengths = []
    for _ in range(3):
        for _ in range(2):
            sign_in(Client(), "wrong-password")
        until = shared.get(lock)
        lengths.append(round(until - time.time()))
        shared.delete(lock)  # as if it had run out
    assert [length // 60 for length in lengths] == [1, 2, 4]


def test_login_unlock_clears_an_account(ops_admin, settings, capsys):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in(Client(), "wrong-password")
    assert locked(sign_in(Client(), STAFF_PASSWORD))
    call_command("login_unlock", "ops-admin")
    assert "unlocked ops-admin" in capsys.readouterr().out
    assert sign_in(Client(), STAFF_PASSWORD).status_code == 302


# --- the throttle fails closed when its cache fails ------------------------------------------------------


class BrokenCache(LocMemCache):
    """A shared cache whose server is gone: every call raises, as django-redis or DatabaseCache would."""

    def _fail(self, *args, **kwargs):
        raise ConnectionError("cache server unreachable")

    get = set = add = incr = delete = get_many = delete_many = has_key = touch = _fail

    def clear(self):
        pass


def refused_for_the_throttle(response) -> bool:
    return response.status_code == 200 and "failed attempts cannot be counted" in response.content.decode()


@pytest.mark.parametrize("password", ["wrong", STAFF_PASSWORD])
def test_a_failing_shared_cache_refuses_sign_in_without_a_500(client, ops_admin, settings, password):
    settings.CACHES = {
        **settings.CACHES,
        settings.SHARED_CACHE: {"BACKEND": "tests.lizzy.test_admin_login.BrokenCache"},
    }
    response = sign_in(client, password)
    assert refused_for_the_throttle(response)  # never a password check without a throttle
    assert "_auth_user_id" not in client.session
    assert ERR_THROTTLE_UNAVAILABLE in response.content.decode()


@pytest.fixture
def dynamodb_shared_cache(dynamodb, settings):
    settings.CACHES = {
        **settings.CACHES,
        settings.SHARED_CACHE: {"BACKEND": "lizzy.cache_backend.DynamoDBCache", "OPTIONS": {"ALIAS": "login-test"}},
    }
    return caches[settings.SHARED_CACHE]


def failing(*operations):
    def hook(operation, params, call):
        if operation in operations:
            raise client_error("InternalServerError", "injected", operation)
        return call(params)

    return hook


@pytest.mark.parametrize("operations", [("GetItem", "PutItem", "UpdateItem"), ("UpdateItem",)])
def test_a_failing_dynamodb_cache_fails_closed_even_though_its_reads_are_misses(
    client, ops_admin, dynamodb_shared_cache, operations
):
    # ("UpdateItem",): add works, incr raises ValueError ("could not be updated") on the wrong password
    with fault_injection(failing(*operations)):
        assert refused_for_the_throttle(sign_in(client, "wrong"))
        right = sign_in(client, STAFF_PASSWORD)
    if operations == ("UpdateItem",):
        assert right.status_code == 302  # the throttle could read and write what a right password needs
    else:
        assert refused_for_the_throttle(right)
        assert "_auth_user_id" not in client.session


def test_failures_counted_before_an_outage_still_lock_after_it(client, ops_admin, dynamodb_shared_cache, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    for _ in range(2):
        sign_in(client, "wrong")
    with fault_injection(failing("PutItem", "UpdateItem", "GetItem")):
        assert refused_for_the_throttle(sign_in(client, "wrong"))
    assert not locked(sign_in(client, "wrong"))  # the third counted failure
    assert locked(sign_in(client, STAFF_PASSWORD))
