"""DRF throttling for API clients: requests per token owner, counted in the shared cache.

The counters live in the ``shared`` cache (Redis, or the database without it), so every gunicorn worker
counts against the same budget. Anonymous callers are refused by authentication before throttling; the
SMS webhook (signed, called from Twilio's many addresses) is not throttled.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle


class ApiUserRateThrottle(UserRateThrottle):
    scope = "api"

    @property
    def cache(self) -> Any:  # DRF reads ``self.cache``; the default cache may be per process
        return caches[settings.SHARED_CACHE]

    def get_rate(self) -> str | None:
        return settings.LIZZY_API_THROTTLE_RATE

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
