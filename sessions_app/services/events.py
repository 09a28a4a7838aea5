"""Session change events over Redis pub/sub, and presence of ops staff viewing a session (seed 001).

Events are fire-and-forget: publishing never fails or slows a session write beyond one socket
timeout, and while the session Redis breaker is open nothing is attempted. An event carries the
hashed phone, never the number itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy import metrics
from lizzy.phone import hash_phone
from lizzy.redis import (
    EVENTS_CHANNEL,
    RedisUnavailable,
    redis_presence_leave,
    redis_presence_list,
    redis_presence_touch,
    redis_publish,
    redis_subscribe,
    redis_url,
)
from sessions_app.services.store.breaker import redis_breaker

logger = logging.getLogger(__name__)


def session_event_publish(*, kind: str, phone: str, node: str | None, version: int | None) -> bool:
    """Publish one change event; False (and a counted error) when Redis is absent or away."""
    if not redis_url():
        return False
    if not redis_breaker.allow():
        metrics.EVENTS_PUBLISHED.labels("skipped").inc()
        return False
    event: dict[str, Any] = {
        "type": kind,
        "phoneHash": hash_phone(phone),
        "node": node,
        "version": version,
        "time": timezone.now().isoformat(),
    }
    try:
        redis_publish(channel=EVENTS_CHANNEL, message=event)
    except RedisUnavailable:
        redis_breaker.failure()
        metrics.EVENTS_PUBLISHED.labels("error").inc()
        logger.warning("could not publish a %s event", kind)
        return False
    redis_breaker.success()
    metrics.EVENTS_PUBLISHED.labels("published").inc()
    return True


def session_events_stream(*, max_seconds: float, limit: int | None = None) -> Iterator[dict[str, Any] | None]:
    """Events from every process for up to ``max_seconds`` (None on idle polls, for heartbeats)."""
    sent = 0
    for event in redis_subscribe(channel=EVENTS_CHANNEL, max_seconds=max_seconds):
        yield event
        if event is not None:
            sent += 1
            if limit and sent >= limit:
                return


def presence_touch(*, phone: str, viewer: str) -> list[str]:
    """``viewer`` is looking at the session (expires after LIZZY_PRESENCE_SECONDS); everyone looking."""
    return redis_presence_touch(
        phone_hash=hash_phone(phone), viewer=viewer, ttl_seconds=settings.LIZZY_PRESENCE_SECONDS
    )


def presence_list(*, phone: str) -> list[str]:
    return redis_presence_list(phone_hash=hash_phone(phone))


def presence_leave(*, phone: str, viewer: str) -> None:
    redis_presence_leave(phone_hash=hash_phone(phone), viewer=viewer)
