"""The dashboard panels infrastructure owns: alarms, capacity and cost, errors.

Apps register their own panels (sessions by node: ``sessions_app/admin_panels.py``); nothing here
imports an app.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest

from lizzy.cost import capacity_flush_if_due, capacity_summary
from lizzy.dashboard import register_panel
from lizzy.dynamodb import dynamodb_describe_table
from lizzy.observability.alarms import ALARM_WINDOW_MINUTES, alarm_states, recent_errors
from lizzy.tables import product_tables

STORAGE_KEY = "lizzy:dashboard:storage-bytes"
STORAGE_SECONDS = 300  # DynamoDB refreshes TableSizeBytes about every six hours anyway
GIGABYTE = 1024**3


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
register_panel("capacity", "DynamoDB capacity and cost", "admin/lizzy/panels/capacity.html", capacity_context, order=30)
register_panel(
    "recent_errors", "Recent DynamoDB errors", "admin/lizzy/panels/recent_errors.html", recent_errors_context, order=90
)
