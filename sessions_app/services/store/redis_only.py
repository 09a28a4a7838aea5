"""``redis_only``: the legacy store, one JSON string per phone under ``lizzy:session:{phone}``.

The key expires with the session. A deleted or expired session is a tombstone
(lizzy/redis_scripts/session_tombstone.lua): absent to every read here, and what keeps older copies from
being filled back. The other Redis-backed stores reach Redis through this store's methods.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from lizzy.redis import (
    is_tombstone,
    json_dumps,
    json_loads,
    redis_session_cas,
    redis_session_get,
    redis_session_tombstone,
)
from sessions_app.services.store.base import (
    ERR_CONFLICT,
    RetiringSessionStore,
    Session,
    SessionConflict,
    session_conflict,
    session_expiry,
    session_stamped,
)
from sessions_app.services.store.timing import timed

BELOW_TOMBSTONE = -3  # session_cas.lua: a create stamped at or below the tombstone it would replace


def redis_document(session: Session) -> dict[str, Any]:
    """The camelCase document as Redis holds it: the DynamoDB item without ``ttl`` (the key expires)."""
    document = session.to_document()
    document.pop("ttl", None)
    return document


def session_from_redis(document: dict[str, Any]) -> Session:
    """A session read from Redis: one GET, its ``ttl`` derived as every write set the key's expiry."""
    session = Session.from_document(document)
    session.ttl = session_expiry(session.last_activity)
    return session


def canonical(session: Session | None) -> dict[str, Any] | None:
    """What must agree between the two stores: the document without ``ttl``, numbers normalised."""
    return None if session is None else json_loads(json_dumps(redis_document(session)))


class RedisSessionStore(RetiringSessionStore):
    def __init__(self, *, tombstones_outlive_sessions: bool = False) -> None:
        # ``parallel``: a tombstone must outlive any DynamoDB copy of the session it ended (the delete's mirror
        # write may have failed, and parallel reads DynamoDB on a miss), so it lasts a session's lifetime.
        self.tombstones_outlive_sessions = tombstones_outlive_sessions

    def tombstone_seconds(self) -> int:
        """How long a tombstone of this store stays: LIZZY_TOMBSTONE_SECONDS, or a session's lifetime."""
        seconds = settings.LIZZY_TOMBSTONE_SECONDS
        if self.tombstones_outlive_sessions:
            seconds = max(seconds, settings.LIZZY_SESSION_TTL_SECONDS)
        return int(seconds)

    def get_document(self, phone: str) -> dict[str, Any] | None:
        """The raw document under the phone's key (a session or a tombstone), or None: one GET."""
        with timed("redis", "get"):
            return redis_session_get(phone=phone)

    def peek(self, phone: str) -> tuple[Session | None, int]:
        """(live session or None, the version a new lifetime must start above: a tombstone's)."""
        found = self.get_document(phone)
        if found is None:
            return None, 0
        if is_tombstone(found):
            return None, int(found.get("version", 0))
        return session_from_redis(found), 0

    def load(self, phone: str) -> Session | None:
        return self.peek(phone)[0]

    def cas(self, stored: Session, *, expected_version: int | None, mark_dirty: bool) -> tuple[bool, int]:
        """Write ``stored`` if the key holds ``expected_version`` (None: no live session): (written,
        current version, -1 when the key is absent). One Lua call."""
        with timed("redis", "cas"):
            return redis_session_cas(
                phone=stored.phone,
                document=redis_document(stored),
                expected_version=expected_version,
                expire_at=stored.ttl,
                mark_dirty=mark_dirty,
            )

    def save(
        self, session: Session, *, expected_version: int | None, mark_dirty: bool = False, version_floor: int = 0
    ) -> Session:
        stamped_from = expected_version if expected_version is not None else version_floor
        stored = session_stamped(session=session, expected_version=stamped_from)
        written, current = self.cas(stored, expected_version=expected_version, mark_dirty=mark_dirty)
        if not written and current == BELOW_TOMBSTONE:
            # A create over a deleted or expired session's tombstone: the new lifetime starts above it, so
            # no copy of the old lifetime (a DynamoDB leftover, a mirror) is ever "newer" than this one.
            # Only such creates pay the extra GET.
            _, floor = self.peek(session.phone)
            stored = session_stamped(session=session, expected_version=max(floor, version_floor))
            written, current = self.cas(stored, expected_version=None, mark_dirty=mark_dirty)
        if not written:
            raise session_conflict(session, expected_version)
        return stored

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        """In Redis a session past its expiry is an absent key: expiring now is a conditional tombstone."""
        result = redis_session_tombstone(
            phone=phone, expected_version=expected_version, kind=kind, lifetime_seconds=self.tombstone_seconds()
        )
        if result < 0:
            raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
        return result == 1
