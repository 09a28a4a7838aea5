"""Mode → store: the one place that decides which store serves the current mode (as Django's
``SESSION_ENGINE`` does for its backends). Every store is wrapped to publish change events and built
once per process; the mode itself is cached in-process for seconds (``store_modes``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sessions_app.models import StoreMode
from sessions_app.services.store.base import SessionStore
from sessions_app.services.store.cached import CachedSessionStore, bypassed_forget
from sessions_app.services.store.cutover import CutoverSessionStore
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.parallel import ParallelSessionStore
from sessions_app.services.store.publishing import PublishingStore
from sessions_app.services.store.redis_only import RedisSessionStore
from sessions_app.services.store.write_behind import WriteBehindSessionStore
from sessions_app.services.store_modes import store_mode_current

BUILDERS: dict[str, Callable[[], SessionStore]] = {
    StoreMode.REDIS_ONLY: RedisSessionStore,
    StoreMode.PARALLEL: lambda: ParallelSessionStore(
        RedisSessionStore(tombstones_outlive_sessions=True), DynamoDBSessionStore()
    ),
    StoreMode.CUTOVER: lambda: CutoverSessionStore(DynamoDBSessionStore()),
    StoreMode.DYNAMODB_ONLY: DynamoDBSessionStore,
    StoreMode.CACHED: lambda: CachedSessionStore(DynamoDBSessionStore()),
    StoreMode.CACHED_WRITE_BEHIND: lambda: WriteBehindSessionStore(DynamoDBSessionStore()),
}

_stores: dict[str, SessionStore] = {}
_stores_lock = threading.Lock()


def store_for_mode(mode: str) -> SessionStore:
    store = _stores.get(mode)
    if store is None:
        with _stores_lock:
            store = _stores.get(mode)
            if store is None:
                build = BUILDERS.get(mode, DynamoDBSessionStore)
                store = _stores[mode] = PublishingStore(build())
    return store


def get_session_store() -> SessionStore:
    """The store of the current mode (docs/SESSION_STORE.md)."""
    return store_for_mode(store_mode_current())


def stores_reset() -> None:
    """Forget the stores and what they remember (phones written while Redis was away): tests, per Redis."""
    with _stores_lock:
        _stores.clear()
    bypassed_forget()
