"""Dashboard panels of the sessions app: active sessions by node, and the session store
(docs/SESSION_STORE.md): mode, hot tier, write-behind, breaker.

The app registers its own panels with ``lizzy.dashboard.register_panel`` (this module is loaded by
``sessions_app/admin.py``, as admin classes are), so infrastructure (``lizzy/``) never imports the app.

Hit rates, latencies and the breaker are this process's own (each web process keeps its counters;
Prometheus sums them across processes). Backlog, lag and the last flush are shared (they live in Redis).
A Redis that is down or not configured is a message inside the panel, never a broken dashboard.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from lizzy import metrics
from lizzy.dashboard import register_panel
from lizzy.redis import RedisUnavailable, redis_url
from sessions_app.selectors import flush_backlog, flush_last, session_counts_by_node, session_store_stats
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store_modes import REDIS_MODES, store_mode_get

SESSIONS_BY_NODE_KEY = "lizzy:dashboard:sessions-by-node"
SESSIONS_BY_NODE_SECONDS = 30  # a full Scan of the sessions table: not on every page view
CACHE_BACKEND_SAMPLE = "lizzy_cache_requests_total"
CACHE_BACKEND_ERRORS_SAMPLE = "lizzy_cache_errors_total"
BREAKER_COLOURS = {"closed": "ok", "half_open": "warning", "open": "firing"}


def sessions_by_node_context(request: HttpRequest) -> dict[str, Any]:
    cached = cache.get(SESSIONS_BY_NODE_KEY)
    if cached is None:
        cached = {"counts": session_counts_by_node(), "at": timezone.now().isoformat()}
        cache.set(SESSIONS_BY_NODE_KEY, cached, timeout=SESSIONS_BY_NODE_SECONDS)
    counts: dict[str, int] = cached["counts"]
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "as_of": dt.datetime.fromisoformat(cached["at"]),
        "max_age": SESSIONS_BY_NODE_SECONDS,
    }


def hit_rate(hits: float, misses: float) -> float | None:
    """Hits / lookups, None before the first lookup (shown as "n/a", not as 0 %)."""
    total = hits + misses
    return hits / total if total else None


def cache_backend_hit_rates() -> list[dict[str, Any]]:
    """Per DynamoDB cache backend alias: hits, misses, hit rate and errors (all reasons) of this process."""
    by_cache: dict[str, dict[str, float]] = {}
    for labels, value in metrics.sample_values(CACHE_BACKEND_SAMPLE):
        counts = by_cache.setdefault(labels.get("cache", "?"), {"hit": 0.0, "miss": 0.0, "errors": 0.0})
        counts[labels.get("result", "")] = value
    for labels, value in metrics.sample_values(CACHE_BACKEND_ERRORS_SAMPLE):
        by_cache.setdefault(labels.get("cache", "?"), {"hit": 0.0, "miss": 0.0, "errors": 0.0})["errors"] += value
    return [
        {
            "cache": name,
            "hits": int(c["hit"]),
            "misses": int(c["miss"]),
            "rate": hit_rate(c["hit"], c["miss"]),
            "errors": int(c["errors"]),
        }
        for name, c in sorted(by_cache.items())
    ]


def store_mode_context(request: HttpRequest) -> dict[str, Any]:
    state = store_mode_get()
    pinned = settings.LIZZY_SESSION_STORE_MODE
    change_url = None
    if request.user.has_perm("sessions_app.change_sessionstoresetting"):
        change_url = (
            reverse("admin:sessions_app_sessionstoresetting_change", args=[1])
            if state.changed_at is not None
            else reverse("admin:sessions_app_sessionstoresetting_add")
        )
    return {
        "state": state,
        "mode": pinned or state.mode,
        "pinned": bool(pinned),
        "uses_redis": (pinned or state.mode) in REDIS_MODES,
        "change_url": change_url,
        "history_url": reverse("admin:sessions_app_sessionstoremodechange_changelist"),
    }


def session_cache_context(request: HttpRequest) -> dict[str, Any]:
    stats = session_store_stats()
    tiers = [{"tier": tier, **values} for tier, values in sorted(stats.latency.items())]
    return {
        "hits": int(stats.hits),
        "misses": int(stats.misses),
        "rate": stats.hit_rate,
        "backends": cache_backend_hit_rates(),
        "tiers": tiers,
    }


def write_behind_context(request: HttpRequest) -> dict[str, Any]:
    if not redis_url():
        return {"redis_error": "Redis is not configured (REDIS_URL): no write-behind."}
    try:
        backlog = flush_backlog()
        last = flush_last()
    except RedisUnavailable as exc:
        return {"redis_error": exc.message}
    if last and last.get("finishedAt"):
        last = {**last, "finished": dt.datetime.fromisoformat(last["finishedAt"])}
    return {
        "backlog": backlog.size,
        "lag": None if backlog.oldest_age_seconds is None else round(backlog.oldest_age_seconds, 1),
        "interval": settings.LIZZY_FLUSH_INTERVAL,
        "late": backlog.oldest_age_seconds is not None
        and backlog.oldest_age_seconds > 3 * settings.LIZZY_FLUSH_INTERVAL,
        "last": last,
    }


def breaker_context(request: HttpRequest) -> dict[str, Any]:
    state = redis_breaker.state
    return {
        "name": redis_breaker.name,
        "state": state,
        "colour": BREAKER_COLOURS.get(state, "warning"),
        "threshold": redis_breaker.threshold,
        "reset_seconds": redis_breaker.reset_seconds,
    }


register_panel(
    "sessions_by_node",
    "Active sessions by node",
    "admin/lizzy/panels/sessions_by_node.html",
    sessions_by_node_context,
    order=20,
    permission="lizzy.view_live_sessions",
)
register_panel(
    "store_mode",
    "Session store mode",
    "admin/sessions_app/panels/store_mode.html",
    store_mode_context,
    order=15,
    permission="sessions_app.view_sessionstoresetting",
)
register_panel(
    "session_cache",
    "Cache hit rate and latency",
    "admin/sessions_app/panels/session_cache.html",
    session_cache_context,
    order=40,
    permission="lizzy.view_live_sessions",
)
register_panel(
    "write_behind",
    "Write-behind backlog",
    "admin/sessions_app/panels/write_behind.html",
    write_behind_context,
    order=45,
    permission="lizzy.view_live_sessions",
)
register_panel(
    "breaker",
    "Redis circuit breaker",
    "admin/sessions_app/panels/breaker.html",
    breaker_context,
    order=50,
    permission="lizzy.view_live_sessions",
)
