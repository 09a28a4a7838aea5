"""Request middleware: a request id on every log line and response, and the request latency histogram."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from lizzy import metrics
from lizzy.cost import capacity_flush_if_due
from lizzy.observability.logs import request_id_var

logger = logging.getLogger("lizzy.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is short and plain: it ends up in every log line.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_VIEW = "<unmatched>"
# Probes and scrapes would drown the access log; they are still counted in the histogram.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")


def _view_label(request: HttpRequest) -> str:
    """The URL name (bounded cardinality), never the raw path, which may hold a phone number."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_VIEW
    return match.view_name or match._func_path


class RequestObservabilityMiddleware:
    """Sets the request id, times the request and logs one access line (redacted by the log filter)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _VALID_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            view = _view_label(request)
            metrics.HTTP_REQUEST_LATENCY.labels(view, request.method, str(response.status_code)).observe(elapsed)
            response[REQUEST_ID_HEADER] = request_id
            if not request.path.startswith(QUIET_PATHS):
                logger.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={"view": view, "status": response.status_code, "duration_ms": round(elapsed * 1000, 2)},
                )
            return response
        finally:
            _flush_capacity_if_due()
            request_id_var.reset(token)


def _flush_capacity_if_due() -> None:
    capacity_flush_if_due()
