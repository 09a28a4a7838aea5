"""``parallel`` (seed 000 phase 2): Redis is still the store of record; DynamoDB gets every write as a
mirror that never moves backwards; a sample of reads is compared (shadow reads) before cutover."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import DynamoDBError
from lizzy.errors import ServiceUnavailable
from lizzy.phone import hash_phone
from lizzy.redis import (
    DIVERGENCE_KEY,
    RedisUnavailable,
    json_dumps,
    json_loads,
    redis_session_set_if_newer,
    redis_window_add,
    redis_window_count,
    redis_window_latest,
)
from sessions_app.services.store.base import Session, SessionConflict, SessionStore
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore, dynamodb_mirror
from sessions_app.services.store.redis_only import RedisSessionStore, canonical, redis_document

logger = logging.getLogger(__name__)

DIVERGENCE_SAMPLES = 20


class ParallelSessionStore(SessionStore):
    def __init__(self, redis_store: RedisSessionStore, dynamodb_store: DynamoDBSessionStore) -> None:
        self.redis = redis_store
        self.dynamodb = dynamodb_store

    def load(self, phone: str) -> Session | None:
        try:
            found = self.redis.load(phone)
        except RedisUnavailable:
            metrics.SESSION_FALLBACKS.labels("parallel", "redis_error").inc()
            return self.dynamodb.load(phone)
        if found is None:
            metrics.SESSION_FALLBACKS.labels("parallel", "redis_miss").inc()
            return self.dynamodb.load(phone)
        if random.random() < settings.LIZZY_SHADOW_READ_RATE:  # noqa: S311 - sampling, not security
            found = self._shadow_compare(phone, found)
        return found

    def _shadow_compare(self, phone: str, from_redis: Session) -> Session:
        try:
            from_dynamodb = self.dynamodb.load(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            logger.warning("shadow read of DynamoDB failed: %s", exc.code)
            return from_redis
        metrics.SESSION_SHADOW_READS.inc()
        left, right = canonical(from_redis), canonical(from_dynamodb)
        if left == right:
            return from_redis
        fields = sorted(k for k in set(left) | set(right or {}) if (right or {}).get(k) != left.get(k))
        shadow_divergence_record(phone=phone, fields=fields)
        # Serve the newer one: after a rollback from cutover a stale Redis copy must not win.
        if from_dynamodb is not None and from_dynamodb.version > from_redis.version:
            return from_dynamodb
        return from_redis

    def save(self, session: Session, *, expected_version: int | None) -> Session:
        try:
            stored = self.redis.save(session, expected_version=expected_version)
        except SessionConflict:
            # Not in Redis (expired there, or written during cutover): DynamoDB decides.
            if expected_version is None or self.redis.load(session.phone) is not None:
                raise
            stored = self.dynamodb.save(session, expected_version=expected_version)
            redis_session_set_if_newer(phone=stored.phone, document=redis_document(stored), expire_at=stored.ttl)
            return stored
        dynamodb_mirror(self.dynamodb, stored)
        return stored

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        deleted = self.redis.delete(phone, expected_version=expected_version)
        try:
            deleted_there = self.dynamodb.delete(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
            deleted_there = False
        return deleted or deleted_there

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        if not self.redis.expire(phone, expected_version=expected_version):
            # Not in Redis (expired there, or written during cutover): DynamoDB decides, as in save().
            return self.dynamodb.expire(phone, expected_version=expected_version)
        try:
            self.dynamodb.expire(phone)
        except (DynamoDBError, ServiceUnavailable) as exc:
            metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
        return True


def shadow_divergence_record(*, phone: str, fields: list[str]) -> None:
    """Count and sample a divergence (hashed phone and field names only: no personal data)."""
    metrics.SESSION_DIVERGENCES.inc()
    now = time.time()
    sample = {"time": timezone.now().isoformat(), "phoneHash": hash_phone(phone), "fields": fields, "n": now}
    logger.warning("shadow read divergence for %s in %s", sample["phoneHash"], ",".join(fields))
    try:
        redis_window_add(
            name=DIVERGENCE_KEY, member=json_dumps(sample), score=now, keep_seconds=settings.LIZZY_SHADOW_WINDOW_SECONDS
        )
    except RedisUnavailable:
        logger.warning("could not record the shadow-read divergence in Redis")


def shadow_read_stats() -> dict[str, Any]:
    """Divergences of the last window (shared by all processes, in Redis) and the latest samples."""
    since = time.time() - settings.LIZZY_SHADOW_WINDOW_SECONDS
    samples = [json_loads(s) for s in redis_window_latest(name=DIVERGENCE_KEY, since=since, limit=DIVERGENCE_SAMPLES)]
    for sample in samples:
        sample.pop("n", None)
    return {
        "divergences": redis_window_count(name=DIVERGENCE_KEY, since=since),
        "window_seconds": settings.LIZZY_SHADOW_WINDOW_SECONDS,
        "samples": samples,
    }
