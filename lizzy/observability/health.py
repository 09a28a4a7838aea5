"""Liveness and readiness checks.

``/healthz`` answers from the process alone (a load balancer restarts what does not answer).
``/readyz`` checks each dependency the product needs to serve: the database, DynamoDB
(DescribeTable on the sessions table), Redis when ``REDIS_URL`` is set and the Celery broker when
it is a network service. Details name the check and the error class only: never a URL, host or
credential, because the endpoint is unauthenticated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

from lizzy.dynamodb import dynamodb_describe_table
from lizzy.tables import SESSIONS

BROKER_TIMEOUT_SECONDS = 2.0
LOCAL_BROKER_SCHEMES = ("memory://", "filesystem://")
ERR_TABLE_MISSING = "table missing"
ERR_TABLE_STATUS = "table status {status}"


class CheckFailed(Exception):
    """A readiness check's own verdict (a message safe to show)."""


@dataclass
class CheckResult:
    name: str
    ok: bool
    duration_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {"ok": self.ok, "duration_ms": self.duration_ms}
        if self.error:
            result["error"] = self.error
        return result


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_dynamodb() -> None:
    description = dynamodb_describe_table(table=SESSIONS.name)
    if description is None:
        raise CheckFailed(ERR_TABLE_MISSING)
    status = description.get("TableStatus", "ACTIVE")
    if status not in {"ACTIVE", "UPDATING"}:
        raise CheckFailed(ERR_TABLE_STATUS.format(status=status))


def check_redis() -> None:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()


def check_broker() -> None:
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The checks that apply to this configuration, by name."""
    checks: dict[str, Callable[[], None]] = {"database": check_database, "dynamodb": check_dynamodb}
    if settings.REDIS_URL and "django_redis" in settings.CACHES["default"]["BACKEND"]:
        checks["redis"] = check_redis
    broker = settings.CELERY_BROKER_URL or ""
    if broker and not broker.startswith(LOCAL_BROKER_SCHEMES):
        checks["broker"] = check_broker
    return checks


def readiness_run(*, checks: dict[str, Callable[[], None]] | None = None) -> list[CheckResult]:
    results = []
    for name, check in (checks or readiness_checks()).items():
        started = time.perf_counter()
        try:
            check()
        except CheckFailed as exc:
            results.append(CheckResult(name, False, _ms(started), str(exc)))
        except Exception as exc:  # any failure means "not ready"; the class name is safe to show
            results.append(CheckResult(name, False, _ms(started), type(exc).__name__))
        else:
            results.append(CheckResult(name, True, _ms(started)))
    return results


_cached: dict[str, object] = {"at": -1.0, "results": None}
_cached_lock = threading.Lock()


def readiness_cached() -> list[CheckResult]:
    """``readiness_run()``, at most once per ``LIZZY_READYZ_CACHE_SECONDS`` in this process.

    ``/readyz`` is unauthenticated: without this, every call costs a database query, a DescribeTable, a Redis
    PING and a broker connection, so anyone could multiply the load on all four. Concurrent callers wait for
    the one run in flight instead of starting their own.
    """
    ttl = settings.LIZZY_READYZ_CACHE_SECONDS
    if ttl <= 0:
        return readiness_run()
    with _cached_lock:
        if _cached["results"] is None or time.monotonic() - _cached["at"] >= ttl:
            _cached["results"] = readiness_run()
            _cached["at"] = time.monotonic()
        return list(_cached["results"])


def readiness_forget() -> None:
    _cached["results"] = None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
