"""Review of issue 18, finding 5: a guesser cannot lock out someone else's address or account by what it writes.

The client writes ``X-Forwarded-For`` entries too; with one trusted proxy only the entry the proxy appended
counts. Spelling a user name differently does not open a fresh budget for guesses at the real account.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.fixtures.admin import STAFF_PASSWORD
from tests.lizzy.test_admin_login import _fresh_counters, locked, sign_in  # noqa: F401

pytestmark = pytest.mark.django_db
BALANCER = "10.0.0.2"
VICTIM = "198.51.100.7"


def test_a_guesser_naming_the_victims_address_in_forwarded_for_does_not_lock_the_victim(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_TRUSTED_PROXY_HOPS = 1
    for index in range(20):  # the guesser writes the victim's address; the balancer appends the guesser's own
        headers = {"HTTP_X_FORWARDED_FOR": f"{VICTIM}, 203.0.113.9", "REMOTE_ADDR": BALANCER}
        sign_in(Client(), "wrong-password", username=f"guess-{index}", **headers)
    victim = {"HTTP_X_FORWARDED_FOR": VICTIM, "REMOTE_ADDR": BALANCER}
    assert sign_in(Client(), STAFF_PASSWORD, **victim).status_code == 302


def test_too_few_forwarded_entries_count_against_the_proxys_own_address_not_a_written_one(ops_admin, settings):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    settings.LIZZY_TRUSTED_PROXY_HOPS = 2  # two proxies configured; a request that skipped one carries one entry
    for index in range(20):
        sign_in(
            Client(), "wrong-password", username=f"guess-{index}", HTTP_X_FORWARDED_FOR=VICTIM, REMOTE_ADDR="192.0.2.66"
        )
    victim = {"HTTP_X_FORWARDED_FOR": f"{VICTIM}, 10.0.0.1", "REMOTE_ADDR": BALANCER}
    assert sign_in(Client(), STAFF_PASSWORD, **victim).status_code == 302


@pytest.mark.parametrize("variant", ["OPS-ADMIN", " ops-admin", "ops-admin "])
def test_another_spelling_of_the_user_name_shares_the_accounts_budget(ops_admin, settings, variant):
    settings.LIZZY_LOGIN_FAILURE_LIMIT = 3
    for index in range(3):
        sign_in(Client(), "wrong-password", username=variant, REMOTE_ADDR=f"192.0.2.{index}")
    assert locked(sign_in(Client(), STAFF_PASSWORD, REMOTE_ADDR="192.0.2.50"))
