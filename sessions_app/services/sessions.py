"""The session services: save and delete through the store of the current mode.

The stores live in ``sessions_app.services.store`` (one module per mode, the factory choosing); reads are
in ``sessions_app.selectors``. The document and its helpers are re-exported here for the callers.
"""

from __future__ import annotations

from sessions_app.services.store.base import (
    CACHED_DATA_KEYS,
    ERR_CONFLICT,
    ERR_EXISTS,
    MAIN_MENU,
    SESSION_DATA_KEYS,
    Session,
    SessionConflict,
    SessionStore,
    session_expiry,
    session_new,
    session_stamped,
    session_touch,
)
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.factory import get_session_store

__all__ = [
    "CACHED_DATA_KEYS",
    "ERR_CONFLICT",
    "ERR_EXISTS",
    "MAIN_MENU",
    "SESSION_DATA_KEYS",
    "DynamoDBSessionStore",
    "Session",
    "SessionConflict",
    "SessionStore",
    "get_session_store",
    "session_delete",
    "session_expiry",
    "session_new",
    "session_save",
    "session_stamped",
    "session_touch",
]


def session_save(*, session: Session, expected_version: int | None) -> Session:
    """Write ``session`` if the stored version is still ``expected_version`` (None: must not exist).

    Returns the stored session (new version, fresh ``lastActivity``/``ttl``); raises
    ``SessionConflict`` when another writer got there first, ``ItemTooLarge`` before any write
    when the item would exceed 400 KB.
    """
    return get_session_store().save(session, expected_version=expected_version)


def session_delete(*, phone: str, expected_version: int | None = None) -> bool:
    """End a session. False when there was no live session."""
    return get_session_store().delete(phone, expected_version=expected_version)
