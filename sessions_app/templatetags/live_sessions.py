"""Template helpers for links to live sessions: by opaque reference, never by phone number."""

from __future__ import annotations

from django import template

from lizzy.formats import console_timestamp
from lizzy.phone import phone_ref as _phone_ref

register = template.Library()


@register.filter
def phone_ref(phone: str) -> str:
    """``{% url 'admin:sessions_live_detail' entry.phone|phone_ref %}``."""
    return _phone_ref(phone)


@register.filter
def console_time(value: object) -> str:
    """``{{ session.last_activity|console_time }}``: ``2026-12-01 14:05:09``, the console's one format."""
    return console_timestamp(value)
