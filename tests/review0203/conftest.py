"""The store tests' Redis fixtures, for the review's probes of the session store."""

from tests.sessions_app.store.conftest import session_redis, use_mode

__all__ = ["session_redis", "use_mode"]
