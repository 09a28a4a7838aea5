"""Suite-wide fixtures: every test starts with empty caches; the run ends by saying what skipped and why."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Generator

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


@pytest.fixture(autouse=True)
def _heap_unfrozen() -> Generator[None, None, None]:
    """A test that starts a Celery pool process's signals in this process (``worker_process_init``) also has
    its heap frozen (``lizzy.celery.heap_freeze``): put back after it, so that the garbage of the tests
    before it can still be collected."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


TRANSACTIONAL_FIXTURES = {"transactional_db", "live_server", "django_db_reset_sequences"}


def _flushes_the_database(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool(TRANSACTIONAL_FIXTURES & set(getattr(item, "fixturenames", ()))) or bool(
        marker and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences"))
    )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """After a transactional test, the rows ``migrate`` seeds are back, as every other test expects.

    A transactional test ends by flushing every table; Django's flush re-runs post_migrate (the roles come
    back) but not the data migrations, so the default prices that ``lizzy/migrations/0001_initial.py`` seeds
    were gone for every later test in the process. pytest-django runs transactional tests last, so one process
    never noticed; ``make test``'s workers (pytest-xdist, a file at a time) run them between other files' tests.
    A teardown wrapper, because the flush is the last fixture finalizer."""
    # the last test of the process: the test database is already gone with the session's fixtures
    flushed = _flushes_the_database(item) and nextitem is not None
    result = yield
    if flushed:
        from pytest_django.plugin import blocking_manager_key

        from lizzy.models import DEFAULT_CACHE_NODES, DEFAULT_PRICES, CacheNodePrice, DynamoDBPricing

        with item.config.stash[blocking_manager_key].unblock():
            for name, write, read, storage, active, source in DEFAULT_PRICES:
                DynamoDBPricing.objects.get_or_create(
                    name=name,
                    defaults={"write_per_million": write, "read_per_million": read, "storage_per_gb_month": storage,
                              "is_active": active, "source": source},
                )  # fmt: skip
            for node_type, memory, monthly, replaced, source in DEFAULT_CACHE_NODES:
                CacheNodePrice.objects.get_or_create(
                    node_type=node_type,
                    defaults={"memory_gb": memory, "monthly_usd": monthly, "replaced": replaced, "source": source},
                )
    return result
