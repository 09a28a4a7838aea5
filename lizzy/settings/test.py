"""The test suite: real services when their variables are set, embedded defaults otherwise."""

import sys

import django

from .base import *  # noqa: F403
from .base import VAR_DIR, env

SECRET_KEY = "lizzy-test-key"  # noqa: S105 - tests only
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

# Django's own cache tests (tests/lizzy/cache/test_django_suite.py), fetched by `make django-tests`:
# importable as the package ``cache`` and installed as its app, so its Poll model gets a table.
LIZZY_DJANGO_TESTS_DIR = VAR_DIR / "django-tests" / django.__version__
if (LIZZY_DJANGO_TESTS_DIR / "cache" / "tests.py").is_file():
    sys.path.append(str(LIZZY_DJANGO_TESTS_DIR))
    INSTALLED_APPS = [*INSTALLED_APPS, "cache"]  # noqa: F405
