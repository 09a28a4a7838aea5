"""``cutover`` (seed 000 phase 3): DynamoDB is the store of record; Redis still gets every write, so a
rollback to ``parallel`` loses nothing."""

from __future__ import annotations

import logging

from lizzy import metrics
from lizzy.phone import mask_phone
from lizzy.redis import RedisUnavailable, redis_session_set_if_newer, redis_session_tombstone
from sessions_app.services.store.base import RetiringSessionStore, Session
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from sessions_app.services.store.redis_only import redis_document
from sessions_app.services.store.timing import timed

logger = logging.getLogger(__name__)


class CutoverSessionStore(RetiringSessionStore):
    """Seed 000 phase 3: DynamoDB is the store of record; Redis still gets every write (rollback safety)."""

    def __init__(self, dynamodb_store: DynamoDBSessionStore) -> None:
        self.dynamodb = dynamodb_store

    def load(self, phone: str) -> Session | None:
        with timed("dynamodb", "get"):
            return self.dynamodb.load(phone)

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        with timed("dynamodb", "put"):
            stored = self.dynamodb.save(session, expected_version=expected_version)
        try:
            with timed("redis", "mirror"):
                redis_session_set_if_newer(phone=stored.phone, document=redis_document(stored), expire_at=stored.ttl)
        except RedisUnavailable as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("redis", exc.code).inc()
            logger.warning("Redis mirror write failed for %s", mask_phone(stored.phone))
        return stored

    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool:
        leftover = self.dynamodb.retire(phone, expected_version=expected_version, kind=kind)
        # The Redis mirror gets a tombstone too: after a rollback to parallel it must not serve the session.
        try:
            redis_session_tombstone(phone=phone, kind=kind, floor_version=leftover)
        except RedisUnavailable as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("redis", exc.code).inc()
        return leftover is not None
