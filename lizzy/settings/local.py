"""A developer's laptop: embedded defaults, nothing to install but Python."""

from .base import *  # noqa: F403
from .base import AWS_ENDPOINT_URL_DYNAMODB, DEVELOPMENT_KEY, LIZZY_LOCAL_DYNAMODB_PORT, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# A fixed key for a laptop only; production refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEVELOPMENT_KEY)

# Unset means the embedded local endpoint that `make run` starts (moto's server mode).
AWS_ENDPOINT_URL_DYNAMODB = AWS_ENDPOINT_URL_DYNAMODB or f"http://127.0.0.1:{LIZZY_LOCAL_DYNAMODB_PORT}"
