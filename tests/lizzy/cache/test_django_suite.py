"""Django 5.2's own cache contract (``BaseCacheTests``, tests/cache/tests.py) against DynamoDBCache over HTTP.

The tests are Django's, unmodified, fetched from the pinned sdist (``django_suite.py``). The backend
refuses culling (``MAX_ENTRIES``), so the ``cull`` and ``zero_cull`` caches are left out of the settings,
as Django does for memcached: its three culling tests then skip themselves ("Culling isn't implemented.").
Every other test must pass; ``test_the_suite_is_all_there`` checks nothing else went missing.
"""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.test import TestCase, override_settings

from tests.lizzy.cache.django_suite import ERR_MISSING, fetched, suite_dir

if not fetched():
    pytest.fail(ERR_MISSING.format(path=suite_dir()), pytrace=False)
django_cache_tests = importlib.import_module("cache.tests")

BACKEND = "lizzy.cache_backend.DynamoDBCache"
CULLING_CACHES = {"cull", "zero_cull"}
CULLING_TESTS = {"test_cull", "test_zero_cull", "test_cull_delete_when_store_empty"}
DJANGO_5_2_TEST_COUNT = 54  # test methods of BaseCacheTests in Django 5.2


@pytest.mark.integration
@pytest.mark.usefixtures("cache_table_over_http")
@override_settings(
    CACHES=django_cache_tests.caches_setting_for_tests(BACKEND=BACKEND, LOCATION="LizzyCache", exclude=CULLING_CACHES)
)
class DynamoDBCacheDjangoSuiteTests(django_cache_tests.BaseCacheTests, TestCase):
    """Every test of Django's BaseCacheTests, run as Django runs them for its own backends."""


def test_the_suite_is_all_there():
    names = {name for name in dir(django_cache_tests.BaseCacheTests) if name.startswith("test_")}
    assert len(names) == DJANGO_5_2_TEST_COUNT
    assert names >= CULLING_TESTS
    assert set(django_cache_tests._caches_setting_base) - CULLING_CACHES == {
        "default",
        "prefix",
        "v2",
        "custom_key",
        "custom_key2",
    }
    assert suite_dir() == settings.LIZZY_DJANGO_TESTS_DIR
