"""The console's timestamps: one format (``en/formats.py``'s DATETIME_FORMAT, ``2026-12-01 14:05:09``, UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import dateformat, formats, timezone


def console_timestamp(value: Any) -> str:
    """A time as console pages show it, whatever it was stored as: an ISO 8601 string (DynamoDB and Redis
    documents: ``2026-12-01T14:05:09.123Z``), a datetime (naive means UTC) or epoch seconds. ``-`` for none;
    anything that is not a time is shown as it is."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            return str(value)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return dateformat.format(timezone.localtime(moment), formats.get_format("DATETIME_FORMAT"))
