"""The test suite: real services when their variables are set, embedded defaults otherwise."""

import sys

import django

from .base import *  # noqa: F403
from .base import SHARED_CACHE, TEST_KEY, VAR_DIR, env

SECRET_KEY = TEST_KEY
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
# Tests point the client at moto's in-process mock or at a moto server they start themselves.
AWS_ENDPOINT_URL_DYNAMODB = None
LIZZY_ENV = env("LIZZY_ENV", default="test")
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"
# Sessions follow this mode without a database lookup; store tests override it (docs/SESSION_STORE.md).
LIZZY_SESSION_STORE_MODE = env("LIZZY_SESSION_STORE_MODE", default="dynamodb_only")
LIZZY_MAPPING_HMAC_KEY = "lizzy-test-mapping-key"  # noqa: S105 - tests only
LIZZY_MIGRATION_CHUNK_SIZE = 50
# The tests' source databases are the test server's own, reached as its superuser; the refusal of such a role
# is tested with the setting off (tests/review18/test_source_privileges.py).
LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE = env.bool("LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE", default=True)
# Tests flush the cost ledger explicitly (tests/lizzy/test_cost.py); a subprocess test sets the variable.
LIZZY_CAPACITY_FLUSH_SECONDS = env.float("LIZZY_CAPACITY_FLUSH_SECONDS", default=-1.0)
LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = env.float("LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS", default=0.01)

# Django's own cache tests (tests/lizzy/cache/test_django_suite.py), fetched by `make django-tests`:
# importable as the package ``cache`` and installed as its app, so its Poll model gets a table.
LIZZY_DJANGO_TESTS_DIR = VAR_DIR / "django-tests" / django.__version__
if (LIZZY_DJANGO_TESTS_DIR / "cache" / "tests.py").is_file():
    sys.path.append(str(LIZZY_DJANGO_TESTS_DIR))
    INSTALLED_APPS = [*INSTALLED_APPS, "cache"]  # noqa: F405
# Throttling is its own test (tests/lizzy/test_throttling.py); the rest of the suite must not hit it.
LIZZY_API_THROTTLE_RATE = None
# Shared counters: emptied before every test (tests/fixtures/api.py), and without a database hit for tests
# that have none. The database cache (production's choice without Redis) is tested with two gunicorn
# servers in tests/security/test_login_lockout_processes.py.
CACHES[SHARED_CACHE] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "lizzy-shared"}  # noqa: F405
# Each readiness test sets up its own failure; the cache is tested on its own (tests/security/test_hardening.py).
LIZZY_READYZ_CACHE_SECONDS = 0.0
# The test client leaves unread streams open; the bounds are tested under gunicorn (test_event_streams.py).
LIZZY_EVENT_STREAMS_PER_PROCESS = 1000
