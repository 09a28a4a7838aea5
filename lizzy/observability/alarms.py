"""Seed 000's CloudWatch alarms, evaluated from DynamoDB errors this product records itself.

Each failed DynamoDB request is counted in a per-minute bucket in Django's cache (Redis when
``REDIS_URL`` is set, so every web and worker process adds to the same counters) and appended to a
short list of recent errors. An alarm sums the last ``ALARM_WINDOW_MINUTES`` buckets.

Recording is best effort: a cache outage must never turn a DynamoDB error into a different error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

logger = logging.getLogger(__name__)

ALARM_WINDOW_MINUTES = 5  # seed 000: every alarm uses a 5-minute period
BUCKET_KEY = "lizzy:alarms:{kind}:{minute}"  # one integer per kind and minute (epoch minutes)
BUCKET_TIMEOUT_SECONDS = (ALARM_WINDOW_MINUTES + 5) * 60
RECENT_ERRORS_KEY = "lizzy:alarms:recent"
RECENT_ERRORS_MAX = 20
RECENT_ERRORS_TIMEOUT_SECONDS = 24 * 3600
KINDS = ("system", "user", "throttled")
# Set while this thread records: with DynamoDBCache as the default cache, recording is itself a DynamoDB
# call, and a failing one must not record again (docs/CACHE.md) - that recursed once per stack frame.
_recording = threading.local()


@dataclass(frozen=True)
class AlarmRule:
    key: str
    name: str
    kind: str
    threshold: int  # the alarm fires when the window's count is greater than this


# Seed 000, "Recommended Alarms": SystemErrors > 0, UserErrors > 10 (5 min), ThrottledRequests > 0.
ALARM_RULES = (
    AlarmRule("system_errors", "SystemErrors", "system", 0),
    AlarmRule("user_errors", "UserErrors", "user", 10),
    AlarmRule("throttled_requests", "ThrottledRequests", "throttled", 0),
)


@dataclass(frozen=True)
class AlarmState:
    rule: AlarmRule
    count: int

    @property
    def firing(self) -> bool:
        return self.count > self.rule.threshold


def _minute(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // 60)


def alarm_event_record(*, kind: str, operation: str, table: str, code: str, now: float | None = None) -> None:
    """Count one DynamoDB error of ``kind`` (system, user, throttled) and remember it as recent."""
    if kind not in KINDS:
        raise ValueError(f"unknown alarm kind {kind!r}; expected one of {KINDS}")
    if getattr(_recording, "active", False):
        return
    moment = now if now is not None else time.time()
    key = BUCKET_KEY.format(kind=kind, minute=_minute(moment))
    _recording.active = True
    try:
        cache.add(key, 0, timeout=BUCKET_TIMEOUT_SECONDS)
        cache.incr(key)
        recent = cache.get(RECENT_ERRORS_KEY) or []
        recent.insert(0, {"time": moment, "kind": kind, "operation": operation, "table": table, "code": code})
        cache.set(RECENT_ERRORS_KEY, recent[:RECENT_ERRORS_MAX], timeout=RECENT_ERRORS_TIMEOUT_SECONDS)
    except Exception:  # best effort: see the module docstring
        logger.warning("could not record a DynamoDB %s error for the alarms", kind, exc_info=True)
    finally:
        _recording.active = False


def dynamodb_error_listener(kind: str, operation: str, table: str, code: str) -> None:
    """Registered with ``lizzy.dynamodb.add_error_listener`` when the app starts."""
    alarm_event_record(kind=kind, operation=operation, table=table, code=code)


def alarm_window_count(*, kind: str, now: float | None = None) -> int:
    current = _minute(now)
    keys = [BUCKET_KEY.format(kind=kind, minute=current - offset) for offset in range(ALARM_WINDOW_MINUTES)]
    try:
        return sum(int(value) for value in cache.get_many(keys).values())
    except Exception:
        logger.warning("could not read alarm counters", exc_info=True)
        return 0


_ALARM_SOURCES: list[Callable[[], list[AlarmState]]] = []


def register_alarm_source(source: Callable[[], list[AlarmState]]) -> None:
    """Apps add alarms of their own (change capture lag: migration_app/cdc/observability.py)."""
    if source not in _ALARM_SOURCES:
        _ALARM_SOURCES.append(source)


def alarm_states(*, now: float | None = None) -> list[AlarmState]:
    states = [AlarmState(rule=rule, count=alarm_window_count(kind=rule.kind, now=now)) for rule in ALARM_RULES]
    for source in _ALARM_SOURCES:
        states += source()
    return states


def recent_errors() -> list[dict[str, Any]]:
    try:
        return list(cache.get(RECENT_ERRORS_KEY) or [])
    except Exception:
        logger.warning("could not read recent errors", exc_info=True)
        return []
