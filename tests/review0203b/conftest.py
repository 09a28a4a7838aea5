"""Fixtures of the shared-bypass-registry review probes: the session-store tests' real Redis and pinned mode."""

from tests.sessions_app.store.conftest import session_redis, use_mode  # noqa: F401
