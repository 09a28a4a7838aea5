"""Suite-wide fixtures: every test starts with empty caches; the run ends by saying what skipped and why."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import settings as hypothesis_settings

# `make test` is reproducible: the same examples on every run, so a red run is a change, not a dice roll
# (Hypothesis' advice for CI). `make explore` runs the suite with fresh random examples each time.
hypothesis_settings.register_profile("default", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

pytest_plugins = [
    "tests.fixtures.skip_summary",
    "tests.fixtures.services",
    "tests.fixtures.dynamodb",
    "tests.fixtures.api",
    "tests.fixtures.admin",
    "tests.fixtures.crm",
    "tests.fixtures.redis_server",
    "tests.fixtures.fault_proxy",
    "tests.fixtures.conversations",
]


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    """Every Django cache starts empty: a value one test cached (the dashboard's 30 s session counts, a
    sign-in lockout counter) must not answer for the next. The local-memory cache lives as long as the
    process (the live server's thread shares it), so without this a test's outcome depends on the tests
    that ran before it. Under REDIS_URL the cache is that database, which belongs to the test run."""
    from django.core.cache import caches

    for cache in caches.all():
        # a configured Redis that is down: the tests that need it say so; this one must not error here
        with contextlib.suppress(Exception):
            cache.clear()
