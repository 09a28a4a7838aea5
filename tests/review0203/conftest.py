"""The fixtures the review's probes share with the suites they probe: the store tests' Redis, the migration
tests' SQLite source."""

from tests.migration_app.conftest import sqlite_source
from tests.sessions_app.store.conftest import session_redis, use_mode

__all__ = ["session_redis", "sqlite_source", "use_mode"]
