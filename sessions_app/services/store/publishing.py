"""The wrapper that makes every store publish a change event (pub/sub, seed 001)."""

from __future__ import annotations

from sessions_app.services.events import session_event_publish
from sessions_app.services.store.base import Session, SessionStore


def _publish(kind: str, session: Session | None, phone: str) -> None:
    session_event_publish(
        kind=kind,
        phone=phone,
        node=session.current_node if session else None,
        version=session.version if session else None,
    )


class PublishingStore(SessionStore):
    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner

    def load(self, phone: str) -> Session | None:
        return self.inner.load(phone)

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        stored = self.inner.save(session, expected_version=expected_version)
        _publish("session.created" if expected_version is None else "session.updated", stored, stored.phone)
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        deleted = self.inner.delete(phone, expected_version=expected_version)
        if deleted:
            _publish("session.deleted", None, phone)
        return deleted

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        expired = self.inner.expire(phone, expected_version=expected_version)
        if expired:
            _publish("session.expired", None, phone)
        return expired
