"""Each pytest-xdist worker gets its own Redis database; loaded early (``-p tests.worker_env`` in pyproject.toml).

``make test`` runs the suite on every core (``-n auto``). Django's test database already gets a per-worker name
from pytest-django (``test_<name>_gw0``), and the tests' own source databases, slots, tables and servers have
random names or free ports. Redis is the one shared namespace: the Django cache is cleared before every test,
the Celery broker defaults to REDIS_URL, and some tests empty the database. So worker N uses database
``base + N`` of REDIS_URL's server. This runs before the settings are read, hence a plugin, not a fixture.
"""

from __future__ import annotations

import os
import re

REDIS_DATABASES = 16  # redis.conf's default ``databases``


def worker_redis_url(url: str, worker: str) -> str:
    """``redis://host:port/7`` for worker ``gw1`` → ``redis://host:port/8``."""
    index = int(worker.removeprefix("gw"))
    match = re.fullmatch(r"(?P<server>rediss?://[^/]+)(?:/(?P<db>\d*))?", url)
    if match is None:
        raise ValueError(f"REDIS_URL is not a redis://host:port/db URL this suite can split per worker: {url!r}")
    db = int(match["db"] or 0) + index
    if db >= REDIS_DATABASES:
        raise ValueError(
            f"REDIS_URL's database {match['db']} + worker {index} is past Redis's {REDIS_DATABASES} databases: "
            "choose a lower database or fewer workers (-n)"
        )
    return f"{match['server']}/{db}"


_worker = os.environ.get("PYTEST_XDIST_WORKER")
# A pytest that a test starts (a docs block, a subprocess) inherits both variables: shift only once per worker.
if _worker and os.environ.get("REDIS_URL") and os.environ.get("LIZZY_REDIS_URL_OF_WORKER") != _worker:
    os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], _worker)
    os.environ["LIZZY_REDIS_URL_OF_WORKER"] = _worker
