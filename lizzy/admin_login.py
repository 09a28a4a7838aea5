"""Failed admin sign-ins throttled with a small cache-based lockout.

After ``LIZZY_LOGIN_FAILURE_LIMIT`` failures for one username (or four times as many from one
address) within ``LIZZY_LOGIN_LOCKOUT_SECONDS``, sign-in is refused for that long, even with the
right password, and the form says so. Counters live in Django's cache (Redis when ``REDIS_URL`` is
set, so all processes share them). django-axes does more (lockout records, admin pages), but it
replaces the authentication backend and needs ``request`` in every ``authenticate()`` call, which
other parts of the product and their tests do not pass; the admin login form is the only password
sign-in the product has.
"""

from __future__ import annotations

import hashlib
import logging

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest

from lizzy import metrics

logger = logging.getLogger(__name__)

FAILURE_KEY = "lizzy:login-failures:{scope}:{value}"
IP_LIMIT_FACTOR = 4  # one office behind one address may hold several staff members
ERR_LOCKED_OUT = "Too many failed sign-in attempts. Try again in %(minutes)s minute(s)."  # ValidationError params


def _hashed(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]


def _keys(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    limit = settings.LIZZY_LOGIN_FAILURE_LIMIT
    keys = [(FAILURE_KEY.format(scope="user", value=_hashed(username)), limit)]
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    if address:
        keys.append((FAILURE_KEY.format(scope="ip", value=_hashed(address)), limit * IP_LIMIT_FACTOR))
    return keys


def login_locked_out(*, request: HttpRequest | None, username: str) -> bool:
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(request, username))


def login_failure_record(*, request: HttpRequest | None, username: str) -> None:
    metrics.ADMIN_LOGIN_FAILURES.inc()
    for key, _limit in _keys(request, username):
        cache.add(key, 0, timeout=settings.LIZZY_LOGIN_LOCKOUT_SECONDS)
        cache.incr(key)
    logger.warning("admin sign-in failed for user %s", _hashed(username))


def login_failures_clear(*, request: HttpRequest | None, username: str) -> None:
    cache.delete(_keys(request, username)[0][0])


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": ERR_LOCKED_OUT,
    }

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        if username and login_locked_out(request=self.request, username=username):
            metrics.ADMIN_LOGIN_FAILURES.inc()
            minutes = max(1, settings.LIZZY_LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(
                self.error_messages["locked_out"], code="locked_out", params={"minutes": minutes}
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                login_failure_record(request=self.request, username=username)
            raise
        login_failures_clear(request=self.request, username=username)
        return cleaned
