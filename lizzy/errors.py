"""One domain error base and the REST framework's single error shape.

Every error a client can see is ``{"error": {"code": ..., "message": ..., "details": ...}}``.
Messages are module constants so tests and callers reuse them rather than retyping them.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lizzy.scrub import secrets_scrub

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """Base of every error the product raises on purpose."""

    code = "application_error"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(ApplicationError):
    code = "invalid"
    http_status = status.HTTP_400_BAD_REQUEST


class NotFound(ApplicationError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class PreconditionRequired(ApplicationError):
    code = "precondition_required"
    http_status = status.HTTP_428_PRECONDITION_REQUIRED


class PreconditionFailed(ApplicationError):
    code = "precondition_failed"
    http_status = status.HTTP_412_PRECONDITION_FAILED


class ServiceUnavailable(ApplicationError):
    code = "service_unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


_DRF_CODES = {
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


# Errors whose text comes from an outside service: DynamoDB's own message (moto's HTML page, or on AWS text
# that may name the account, the role's ARN or the table's ARN) is logged, and the client gets this instead.
UPSTREAM_CODES = frozenset({"dynamodb_error"})
ERR_UPSTREAM = "DynamoDB refused the request ({code}). Nothing was changed; the details are in the server log."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


ERR_INVALID = "The request is invalid."
ERR_INVALID_FIELDS = "Invalid {fields}; see details."


def _invalid_message(details: Any) -> str:
    """Name the fields at fault in the message itself (``Invalid limit; see details.``)."""
    if isinstance(details, dict):
        fields = [str(name) for name in details if name not in ("non_field_errors", "detail")]
        if fields:
            return ERR_INVALID_FIELDS.format(fields=", ".join(fields))
    return ERR_INVALID


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: domain errors and DRF's own errors in one JSON shape."""
    if isinstance(exc, ApplicationError):
        if exc.code in UPSTREAM_CODES:
            aws_code = (exc.details or {}).get("code", "error") if isinstance(exc.details, dict) else "error"
            logger.warning("request failed: %s (%s)", exc.code, secrets_scrub(exc.message))
            return Response(
                error_body(exc.code, ERR_UPSTREAM.format(code=aws_code), {"code": aws_code}), status=exc.http_status
            )
        if exc.http_status >= 500:
            logger.warning("request failed: %s (%s)", exc.code, exc.message)
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body("invalid", _invalid_message(response.data), response.data)
        return response
    detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
    code = getattr(detail, "code", None) or _DRF_CODES.get(response.status_code, "error")
    response.data = error_body(str(code), str(detail))
    return response
