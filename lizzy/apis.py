"""The API root: ``GET /api/v1/`` lists the endpoints (DRF's API-root style), for people and for clients."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

# key -> URL name; the collection endpoints (an item's URL is in its collection's responses and the schema).
API_ROOT_ENDPOINTS = {
    "sessions": "sessions_app:session-list",
    "session_refs": "sessions_app:session-ref",  # POST a phone in the body, get the session's URL
    "session_events": "sessions_app:session-events",
    "sms_inbound": "sessions_app:sms-inbound",
    "crm_customers": "sessions_app:crm-customer-list",
    "crm_equipment": "sessions_app:crm-equipment-list",
    "crm_parts": "sessions_app:crm-part-list",
    "crm_parts_orders": "sessions_app:crm-parts-order-list",
    "crm_service_requests": "sessions_app:crm-service-request-list",
    "migration_plans": "migrations:plan-list",
    "schema": "schema",
    "docs": "api-docs",
}


class ApiRootApi(APIView):
    """Every endpoint's absolute URL, keyed by name (token or staff session, like the rest of the API).

    Any signed-in caller may read the list: it names URLs, not data; each endpoint checks its own permission.
    """

    required_permissions = {"GET": ()}

    @extend_schema(
        responses=inline_serializer(name="ApiRoot", fields={key: serializers.URLField() for key in API_ROOT_ENDPOINTS})
    )
    def get(self, request: Request) -> Response:
        return Response({key: reverse(name, request=request) for key, name in API_ROOT_ENDPOINTS.items()})
