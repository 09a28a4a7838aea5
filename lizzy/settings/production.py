"""Production: every secret from the environment, secure transport, no embedded defaults."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import PUBLISHED_KEYS, SECRET_KEY, TWILIO_AUTH_TOKEN, env

MIN_SECRET_KEY_CHARS = 32
ERR_PUBLISHED_KEY = (
    "DJANGO_SECRET_KEY is a key published in this repository (or a django-insecure key, or shorter than "
    f"{MIN_SECRET_KEY_CHARS} characters): anyone could sign sessions. Set a long random one."
)

if not SECRET_KEY:
    raise ImproperlyConfigured("Set the DJANGO_SECRET_KEY environment variable.")
if SECRET_KEY in PUBLISHED_KEYS or SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < MIN_SECRET_KEY_CHARS:
    raise ImproperlyConfigured(ERR_PUBLISHED_KEY)
if not TWILIO_AUTH_TOKEN:
    # Without it the SMS webhook would accept forged messages from anyone.
    raise ImproperlyConfigured("Set the TWILIO_AUTH_TOKEN environment variable.")

DEBUG = False
# SECURE_PROXY_SSL_HEADER: only with LIZZY_TRUSTED_PROXY_HOPS (base.py); without a proxy the header is a claim.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
