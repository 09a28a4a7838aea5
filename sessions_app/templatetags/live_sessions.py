"""Template helpers for links to live sessions: by opaque reference, never by phone number."""

from __future__ import annotations

from django import template

from lizzy.phone import phone_ref as _phone_ref

register = template.Library()


@register.filter
def phone_ref(phone: str) -> str:
    """``{% url 'admin:sessions_live_detail' entry.phone|phone_ref %}``."""
    return _phone_ref(phone)
