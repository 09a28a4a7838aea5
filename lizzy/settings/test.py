"""The test suite: real services when their variables are set, embedded defaults otherwise."""

from .base import *  # noqa: F403
from .base import env

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
