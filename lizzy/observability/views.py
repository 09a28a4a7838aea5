"""``/healthz``, ``/readyz`` and ``/metrics``: plain Django views, outside the REST API's auth."""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from lizzy import metrics
from lizzy.errors import error_body
from lizzy.observability.health import readiness_cached

ERR_METRICS_AUTH = "Send Authorization: Bearer <LIZZY_METRICS_TOKEN>, or sign in to the admin as staff."


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = readiness_cached()
    ready = all(result.ok for result in results)
    body = {"status": "ok" if ready else "unavailable", "checks": {r.name: r.as_dict() for r in results}}
    return JsonResponse(body, status=200 if ready else 503)


def _metrics_allowed(request: HttpRequest) -> bool:
    """A scraper presents the bearer token; a signed-in staff member may look from a browser."""
    token = settings.LIZZY_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff)


def metrics_registry() -> CollectorRegistry:
    """Under gunicorn with PROMETHEUS_MULTIPROC_DIR, aggregate every worker's files; else this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in metrics.SCRAPE_COLLECTORS:
            registry.register(collector)
        return registry
    return REGISTRY


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        status = 401 if not getattr(request, "user", None) or not request.user.is_authenticated else 403
        response = JsonResponse(error_body("not_authenticated", ERR_METRICS_AUTH), status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
