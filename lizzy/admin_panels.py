"""The dashboard panels this part of the product owns: sessions by node, alarms, capacity and cost, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from lizzy.cost import capacity_flush_if_due, capacity_summary
from lizzy.dashboard import register_panel
from lizzy.dynamodb import dynamodb_describe_table
from lizzy.observability.alarms import ALARM_WINDOW_MINUTES, alarm_states, recent_errors
from lizzy.tables import product_tables

SESSIONS_BY_NODE_KEY = "lizzy:dashboard:sessions-by-node"
SESSIONS_BY_NODE_SECONDS = 30  # a full Scan of the sessions table: not on every page view
STORAGE_KEY = "lizzy:dashboard:storage-bytes"
STORAGE_SECONDS = 300  # DynamoDB refreshes TableSizeBytes about every six hours anyway
GIGABYTE = 1024**3


def sessions_by_node_context(request: HttpRequest) -> dict[str, Any]:
    from sessions_app.selectors import session_counts_by_node

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


def alarms_context(request: HttpRequest) -> dict[str, Any]:
    return {"alarms": alarm_states(), "window": ALARM_WINDOW_MINUTES}


def stored_bytes() -> int:
    """Bytes stored across the product's tables (DescribeTable's TableSizeBytes), cached briefly."""
    cached = cache.get(STORAGE_KEY)
    if cached is None:
        cached = 0
        for spec in product_tables():
            description = dynamodb_describe_table(table=spec.name)
            cached += int((description or {}).get("TableSizeBytes", 0))
        cache.set(STORAGE_KEY, cached, timeout=STORAGE_SECONDS)
    return cached


def capacity_context(request: HttpRequest) -> dict[str, Any]:
    capacity_flush_if_due()
    return {"summary": capacity_summary(storage_gb=stored_bytes() / GIGABYTE)}


def recent_errors_context(request: HttpRequest) -> dict[str, Any]:
    errors = [{**error, "when": dt.datetime.fromtimestamp(error["time"], tz=dt.UTC)} for error in recent_errors()]
    return {"errors": errors}


register_panel("alarms", "Alarms", "admin/lizzy/panels/alarms.html", alarms_context, order=10)
register_panel(
    "sessions_by_node",
    "Active sessions by node",
    "admin/lizzy/panels/sessions_by_node.html",
    sessions_by_node_context,
    order=20,
    permission="lizzy.view_live_sessions",
)
register_panel("capacity", "DynamoDB capacity and cost", "admin/lizzy/panels/capacity.html", capacity_context, order=30)
register_panel(
    "recent_errors", "Recent DynamoDB errors", "admin/lizzy/panels/recent_errors.html", recent_errors_context, order=90
)
