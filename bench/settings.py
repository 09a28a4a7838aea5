"""Settings of the webhook benchmark's server (benchmark 3): the local settings, production-like flags,
and ``bench.urls`` which adds a no-op view next to the product's URLs. Never used outside ``bench/``.
"""

from lizzy.settings.local import *  # noqa: F403

DEBUG = False  # DEBUG keeps every SQL query in memory and renders technical 500 pages
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.urls"
# Outermost: each response says how long its request spent in DynamoDB and Redis calls.
MIDDLEWARE = ["bench.store_timer.StoreTimerMiddleware", *MIDDLEWARE]  # noqa: F405
