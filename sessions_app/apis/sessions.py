"""REST endpoints for SMS sessions. Views check input, call one service, serialize the result."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lizzy.errors import NotFound, PreconditionFailed, PreconditionRequired, ValidationFailed
from lizzy.permissions import API_SESSIONS_DELETE, API_SESSIONS_READ, API_SESSIONS_WRITE
from lizzy.phone import normalize_phone
from sessions_app.selectors import session_get
from sessions_app.services.sessions import Session, session_delete, session_list, session_save

ERR_NOT_FOUND = "No live session for this phone."
ERR_IF_MATCH_REQUIRED = "Replacing a session requires If-Match with its current ETag (its version)."
ERR_STALE = "The session is at version {current}, not {given}; re-read it and try again."
ERR_BAD_IF_MATCH = 'If-Match must be an ETag such as "3".'
ERR_PHONE_MISMATCH = "The phone in the body differs from the phone in the URL."

MAX_LIST_LIMIT = 200


class SessionOutputSerializer(serializers.Serializer):
    phone = serializers.CharField()
    customerId = serializers.CharField(required=False)  # noqa: N815 - the seed's attribute names
    currentNode = serializers.CharField()  # noqa: N815
    cachedData = serializers.DictField()  # noqa: N815
    sessionData = serializers.DictField()  # noqa: N815
    lastActivity = serializers.CharField()  # noqa: N815
    ttl = serializers.IntegerField()
    version = serializers.IntegerField()


def _etag(session: Session) -> str:
    return f'"{session.version}"'


def _parse_if_match(request: Request) -> str | int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return "*"
    value = value.removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationFailed(ERR_BAD_IF_MATCH, details={"If-Match": header})
    return int(value)


def _session_response(session: Session, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(session.to_document(), status=status_code, headers={"ETag": _etag(session)})


class SessionDetailApi(APIView):
    required_permissions = {"GET": (API_SESSIONS_READ,), "PUT": (API_SESSIONS_WRITE,), "DELETE": (API_SESSIONS_DELETE,)}

    class InputSerializer(serializers.Serializer):
        phone = serializers.CharField(required=False)
        customerId = serializers.CharField(required=False, allow_null=True, max_length=32)  # noqa: N815
        currentNode = serializers.CharField(required=False, max_length=64, default="MAIN_MENU")  # noqa: N815
        cachedData = serializers.DictField(required=False, default=dict)  # noqa: N815
        sessionData = serializers.DictField(required=False, default=dict)  # noqa: N815

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = set(self.initial_data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(dict.fromkeys(sorted(unknown), "Unknown attribute."))
            return attrs

    @extend_schema(responses={200: SessionOutputSerializer}, summary="Read a live session")
    def get(self, request: Request, phone: str) -> Response:
        session = session_get(phone=normalize_phone(phone))
        if session is None:
            raise NotFound(ERR_NOT_FOUND)
        return _session_response(session)

    @extend_schema(
        request=InputSerializer,
        responses={200: SessionOutputSerializer, 201: SessionOutputSerializer},
        parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        summary="Create or replace a session",
    )
    def put(self, request: Request, phone: str) -> Response:
        phone = normalize_phone(phone)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "phone" in data and normalize_phone(data["phone"]) != phone:
            raise ValidationFailed(ERR_PHONE_MISMATCH)
        if_match = _parse_if_match(request)
        current = session_get(phone=phone)
        if current is None:
            if if_match is not None:
                raise PreconditionFailed(ERR_NOT_FOUND)
            expected = None
        else:
            if if_match is None:
                raise PreconditionRequired(ERR_IF_MATCH_REQUIRED, details={"version": current.version})
            if if_match != "*" and if_match != current.version:
                raise PreconditionFailed(ERR_STALE.format(current=current.version, given=if_match))
            expected = current.version
        session = Session(
            phone=phone,
            customer_id=data.get("customerId"),
            current_node=data["currentNode"],
            cached_data=data["cachedData"],
            session_data=data["sessionData"],
            extra=current.extra if current else {},
        )
        stored = session_save(session=session, expected_version=expected)
        return _session_response(stored, status.HTTP_201_CREATED if current is None else status.HTTP_200_OK)

    @extend_schema(
        parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={204: None},
        summary="End a session",
    )
    def delete(self, request: Request, phone: str) -> Response:
        phone = normalize_phone(phone)
        if_match = _parse_if_match(request)
        expected = if_match if isinstance(if_match, int) else None
        if not session_delete(phone=phone, expected_version=expected):
            raise NotFound(ERR_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionListApi(APIView):
    required_permissions = {"GET": (API_SESSIONS_READ,)}

    class FilterSerializer(serializers.Serializer):
        node = serializers.CharField(required=False, max_length=64)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIST_LIMIT, default=50)
        cursor = serializers.CharField(required=False, max_length=2048)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "SessionPage",
            {"next": serializers.CharField(allow_null=True), "results": SessionOutputSerializer(many=True)},
        ),
        operation_id="sessions_list",
        summary="List live sessions",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        sessions, cursor = session_list(node=params.get("node"), limit=params["limit"], cursor=params.get("cursor"))
        next_url = None
        if cursor:
            query = request.query_params.copy()
            query["cursor"] = cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"next": next_url, "results": [s.to_document() for s in sessions]})
