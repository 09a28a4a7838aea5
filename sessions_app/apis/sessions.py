"""REST endpoints for SMS sessions. Views check input, call one service, serialize the result."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lizzy.errors import NotFound, PreconditionFailed, PreconditionRequired, ValidationFailed
from lizzy.permissions import API_SESSIONS_DELETE, API_SESSIONS_READ, API_SESSIONS_WRITE, READ_CUSTOMER_MESSAGES
from lizzy.phone import MAX_PHONE_INPUT, InvalidPhoneRef, normalize_phone, phone_from_ref, phone_ref
from sessions_app.selectors import session_get, session_list
from sessions_app.services.session_documents import (
    ERR_UNKNOWN_CUSTOMER,
    ERR_UNKNOWN_NODE,
    ERR_VERSION_MISMATCH,
    customer_exists,
    customer_words_restored,
    session_document,
    session_replace,
    workflow_nodes,
)
from sessions_app.services.sessions import Session, session_delete

ERR_NOT_FOUND = "No live session for this phone."
ERR_IF_MATCH_REQUIRED = "Replacing a session requires If-Match with its current ETag (its version)."
ERR_STALE = "The session is at version {current}, not {given}; re-read it and try again."
ERR_BAD_IF_MATCH = 'If-Match must be an ETag such as "3".'
ERR_PHONE_MISMATCH = "The phone in the body differs from the phone of the session the URL names."
ERR_IF_NONE_MATCH = "If-None-Match failed: the session exists at version {current}."
ERR_EMPTY_KEY = "DynamoDB cannot store a map with an empty key."
MAX_QUOTED_INPUT = 64

MAX_LIST_LIMIT = 200
# A phone number in the path (``/api/v1/sessions/+12065550100``) still answers, deprecated since this day: URLs
# reach access logs, proxies and browser history, so a session is named by its ref (``POST …/sessions/refs``).
PHONE_PATH_DEPRECATED = datetime(2026, 12, 1, tzinfo=UTC)
REF_PARAMETER = OpenApiParameter(
    "ref",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The session's opaque reference: `ref` in every session document, or what POST "
    "/api/v1/sessions/refs answers for a phone. A phone number here (+12065550100, percent-encoded) is "
    "deprecated: still answered, with a `Deprecation` header and a `Link` to the ref URL (rel=successor-version).",
)


def session_url(request: Request, phone: str, suffix: str = "") -> str:
    return request.build_absolute_uri(reverse("sessions_app:session-detail", args=[phone_ref(phone)]) + suffix)


class SessionAddressedApi(APIView):
    """An endpoint of one session, named in the path by its ref (``self.phone`` is the session's phone).

    A phone number in the path is the deprecated form: answered, marked with ``Deprecation`` (RFC 9745) and a
    ``Link`` to the same resource by ref.
    """

    path_suffix = ""  # what follows the session in the path, for the Link of the deprecated form

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permissions come first
        self.phone_in_path = False
        try:
            self.phone = phone_from_ref(kwargs["ref"])
        except InvalidPhoneRef:
            self.phone = normalize_phone(kwargs["ref"])  # 400 (invalid_phone) when it is neither
            self.phone_in_path = True

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(self, "phone_in_path", False):
            response["Deprecation"] = f"@{int(PHONE_PATH_DEPRECATED.timestamp())}"
            response["Link"] = f'<{session_url(request, self.phone, self.path_suffix)}>; rel="successor-version"'
        return response


class TurnLogSerializer(serializers.Serializer):
    history = serializers.ListField(
        child=serializers.DictField(),
        help_text="Recent turns: at, sid, from, to, inLen, outLen; in (what the customer wrote) only for callers "
        "with lizzy.read_customer_messages.",
    )
    messageLog = serializers.ListField(  # noqa: N815
        child=serializers.DictField(), help_text="Recent MessageSids with the reply sent (replays get the same reply)."
    )


class SessionOutputSerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="The session's opaque reference: its URL is /api/v1/sessions/{ref}.")
    phone = serializers.CharField()
    customerId = serializers.CharField(required=False)  # noqa: N815 - the seed's attribute names
    currentNode = serializers.CharField()  # noqa: N815
    cachedData = serializers.DictField()  # noqa: N815
    sessionData = serializers.DictField()  # noqa: N815
    lastActivity = serializers.CharField()  # noqa: N815
    ttl = serializers.IntegerField()
    version = serializers.IntegerField()
    # Written by the SMS workflow (absent on a session only the API has written); read-only for PUT.
    turnLog = TurnLogSerializer(required=False)  # noqa: N815
    turnCount = serializers.IntegerField(required=False, min_value=0)  # noqa: N815
    optedOut = serializers.BooleanField(required=False)  # noqa: N815
    handoff = serializers.BooleanField(required=False, help_text="Waiting for a person (at HUMAN_HANDOFF).")


def _etag(session: Session) -> str:
    return f'"{session.version}"'


ETAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')
ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


def _parse_if_match(request: Request) -> str | frozenset[int] | None:
    """``*``, or the versions a list of ETags names (RFC 9110 13.1.1: strong comparison, so a weak
    ``W/"3"`` names none and can never match); 400 for anything that is not an ETag list."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    if header.strip() == "*":
        return "*"
    versions: set[int] = set()
    for part in header.split(","):
        match = ETAG.fullmatch(part)
        if match is None:
            raise ValidationFailed(ERR_BAD_IF_MATCH, details={"If-Match": header[:100]})
        if match.group(1) is None and ASCII_DIGITS.fullmatch(match.group(2)):
            versions.add(int(match.group(2)))
    return frozenset(versions)


def _if_none_match_fails(request: Request, session: Session | None) -> bool:
    """If-None-Match on a write (RFC 9110 13.1.2): false when ``*`` and the session exists, or when it names
    the session's ETag (weak comparison)."""
    header = request.headers.get("If-None-Match")
    if header is None or session is None:
        return False
    tags = _etags(header)
    return "*" in tags or _etag(session) in tags


def _etags(header: str) -> set[str]:
    """The ETags of an If-None-Match header (weak or strong: a GET compares them weakly, RFC 9110 13.1.2)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _shows_text(request: Request) -> bool:
    return request.user.has_perm(READ_CUSTOMER_MESSAGES)


def _document(request: Request, session: Session) -> dict[str, Any]:
    return {"ref": phone_ref(session.phone), **session_document(session=session, show_text=_shows_text(request))}


def _session_response(request: Request, session: Session, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(_document(request, session), status=status_code, headers={"ETag": _etag(session)})


class StrictCharField(serializers.CharField):
    """A string, and only a string: ``5`` is not silently taken as ``"5"``."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class BoundedChoiceField(serializers.ChoiceField):
    """A ChoiceField whose refusal quotes at most MAX_QUOTED_INPUT characters of the input (a 1 MB value
    must not come back in the 400 body, nor in any log of it)."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            text = str(data)
            if len(text) > MAX_QUOTED_INPUT:
                text = text[:MAX_QUOTED_INPUT] + "…"
            self.fail("invalid_choice", input=text)


class PlainIntegerField(serializers.IntegerField):
    """An integer written in ASCII digits only: not ``1_0``, ``٣``, ``1e3``, ``5.5`` or ``-1``."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or not ASCII_DIGITS.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


def _refuse_empty_keys(value: Any) -> Any:
    """DynamoDB refuses an empty attribute name, nested map keys included: 400 here, not a 500 at the write."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "":
                raise serializers.ValidationError(ERR_EMPTY_KEY)
            _refuse_empty_keys(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_empty_keys(item)
    return value


NODE_CHOICES_ERROR = {"invalid_choice": ERR_UNKNOWN_NODE.format(nodes=", ".join(workflow_nodes()))}
CONDITIONAL_ANSWERS = {
    400: OpenApiResponse(description="A field is refused (named in error.details), or If-Match is not an ETag."),
    404: OpenApiResponse(description="No live session for this phone."),
    412: OpenApiResponse(description="If-Match does not name the current version, or If-None-Match fails."),
    428: OpenApiResponse(description="Replacing an existing session without If-Match."),
}


class SessionDetailApi(SessionAddressedApi):
    """A live session, named in the path by its `ref` (`POST /api/v1/sessions/refs` gives it for a phone number).

    Deprecated: a phone number in place of the ref is still answered, with `Deprecation` and
    `Link: <…/api/v1/sessions/{ref}>; rel="successor-version"` headers.
    """

    required_permissions = {"GET": (API_SESSIONS_READ,), "PUT": (API_SESSIONS_WRITE,), "DELETE": (API_SESSIONS_DELETE,)}

    class InputSerializer(serializers.Serializer):
        """What a client sets, plus everything GET returns (read-only: checked or ignored, never refused)."""

        ref = serializers.CharField(required=False, help_text="Read-only: ignored (the path names the session).")
        phone = StrictCharField(required=False)
        customerId = StrictCharField(  # noqa: N815
            required=False, allow_null=True, max_length=32, help_text="A CRM customer ID; null: unknown caller."
        )
        currentNode = BoundedChoiceField(  # noqa: N815
            choices=workflow_nodes(),
            required=False,
            default="MAIN_MENU",
            help_text="A node of the SMS workflow.",
            error_messages=NODE_CHOICES_ERROR,
        )
        cachedData = serializers.DictField(required=False, default=dict)  # noqa: N815
        sessionData = serializers.DictField(required=False, default=dict)  # noqa: N815
        # Read-only (what GET returns): the server keeps its own values; ``version`` must match.
        lastActivity = serializers.CharField(required=False, help_text="Read-only: ignored.")  # noqa: N815
        ttl = serializers.IntegerField(required=False, help_text="Read-only: ignored (every save sets it).")
        version = serializers.IntegerField(
            required=False, min_value=0, help_text="Read-only: when sent, must be the version If-Match names."
        )
        turnLog = serializers.JSONField(required=False, help_text="Read-only: ignored.")  # noqa: N815
        turnCount = serializers.IntegerField(required=False, help_text="Read-only: ignored.")  # noqa: N815
        optedOut = serializers.BooleanField(required=False, help_text="Read-only: ignored (SMS STOP/START set it).")  # noqa: N815
        handoff = serializers.BooleanField(
            required=False, help_text="Read-only: true only while the session is at HUMAN_HANDOFF."
        )

        def validate_cachedData(self, value: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            return _refuse_empty_keys(value)

        def validate_sessionData(self, value: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            return _refuse_empty_keys(value)

        def validate_customerId(self, value: str | None) -> str | None:  # noqa: N802
            current = self.context.get("current")
            if current is not None and value == current.customer_id:
                return value  # what GET returned goes back, even after the customer left the CRM
            if value is not None and not customer_exists(customer_id=value):
                raise serializers.ValidationError(ERR_UNKNOWN_CUSTOMER.format(customer_id=value))
            return value

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            current = self.context.get("current")
            carried = set(current.extra) if current is not None else set()  # GET returns them; the store keeps them
            unknown = set(self.initial_data) - set(self.fields) - carried
            if unknown:
                raise serializers.ValidationError(dict.fromkeys(sorted(unknown), "Unknown attribute."))
            return attrs

    @extend_schema(
        responses={200: SessionOutputSerializer, 304: None, 404: CONDITIONAL_ANSWERS[404]},
        parameters=[
            REF_PARAMETER,
            OpenApiParameter(
                "If-None-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="An ETag from an earlier GET: 304 with no body while the session is still at it.",
            ),
        ],
        summary="Read a live session",
    )
    def get(self, request: Request, ref: str) -> Response:
        session = session_get(phone=self.phone)
        if session is None:
            raise NotFound(ERR_NOT_FOUND)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = _etags(if_none_match)
            if "*" in tags or _etag(session) in tags:
                return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": _etag(session)})
        return _session_response(request, session)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: SessionOutputSerializer,
            201: SessionOutputSerializer,
            400: CONDITIONAL_ANSWERS[400],
            412: CONDITIONAL_ANSWERS[412],
            428: CONDITIONAL_ANSWERS[428],
        },
        parameters=[
            REF_PARAMETER,
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description='The current ETag(s), e.g. "3" or "2", "3" (strong comparison: W/ never matches).',
            ),
            OpenApiParameter(
                "If-None-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="* to create only (412 when the session exists), or ETags the session must not be at.",
            ),
        ],
        summary="Create or replace a session",
    )
    def put(self, request: Request, ref: str) -> Response:
        phone = self.phone
        current = session_get(phone=phone)
        serializer = self.InputSerializer(data=request.data, context={"current": current})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "phone" in data and normalize_phone(data["phone"]) != phone:
            raise ValidationFailed(ERR_PHONE_MISMATCH)
        if_match = _parse_if_match(request)
        if current is None:
            if if_match is not None:
                raise PreconditionFailed(ERR_NOT_FOUND)
        else:
            if _if_none_match_fails(request, current):
                raise PreconditionFailed(
                    ERR_IF_NONE_MATCH.format(current=current.version), details={"version": current.version}
                )
            if if_match is None:
                raise PreconditionRequired(ERR_IF_MATCH_REQUIRED, details={"version": current.version})
            if if_match != "*" and current.version not in if_match:
                given = ", ".join(str(v) for v in sorted(if_match)) or "none (weak ETags never match)"
                raise PreconditionFailed(ERR_STALE.format(current=current.version, given=given))
            if "version" in data and data["version"] != current.version:
                raise PreconditionFailed(
                    ERR_VERSION_MISMATCH.format(given=data["version"], current=current.version),
                    details={"version": current.version},
                )
        stored = session_replace(
            phone=phone,
            customer_id=data.get("customerId"),
            current_node=data["currentNode"],
            cached_data=data["cachedData"],
            session_data=customer_words_restored(data["sessionData"], current.session_data if current else None),
            current=current,
        )
        return _session_response(request, stored, status.HTTP_201_CREATED if current is None else status.HTTP_200_OK)

    @extend_schema(
        parameters=[REF_PARAMETER, OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={204: None, 404: CONDITIONAL_ANSWERS[404]},
        summary="End a session",
    )
    def delete(self, request: Request, ref: str) -> Response:
        phone = self.phone
        if_match = _parse_if_match(request)
        expected = None
        if isinstance(if_match, frozenset):
            if len(if_match) == 1:
                expected = next(iter(if_match))
            else:
                current = session_get(phone=phone)
                if current is None:
                    raise NotFound(ERR_NOT_FOUND)
                if current.version not in if_match:
                    given = ", ".join(str(v) for v in sorted(if_match)) or "none (weak ETags never match)"
                    raise PreconditionFailed(ERR_STALE.format(current=current.version, given=given))
                expected = current.version
        if not session_delete(phone=phone, expected_version=expected):
            raise NotFound(ERR_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionListApi(APIView):
    required_permissions = {"GET": (API_SESSIONS_READ,)}

    class FilterSerializer(serializers.Serializer):
        node = BoundedChoiceField(choices=workflow_nodes(), required=False, error_messages=NODE_CHOICES_ERROR)
        limit = PlainIntegerField(required=False, min_value=1, max_value=MAX_LIST_LIMIT, default=50)
        cursor = serializers.CharField(required=False, max_length=2048)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={
            200: inline_serializer(
                "SessionPage",
                {"next": serializers.CharField(allow_null=True), "results": SessionOutputSerializer(many=True)},
            ),
            400: CONDITIONAL_ANSWERS[400],
        },
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
        return Response(
            {
                "next": next_url,
                "results": [_document(request, session) for session in sessions],
            }
        )


class SessionRefApi(APIView):
    """A phone number (in the body, never in a URL) to the ref and URL of its session, live or not yet."""

    required_permissions = {"POST": (API_SESSIONS_READ,)}

    class SessionRefRequestSerializer(serializers.Serializer):
        phone = StrictCharField(max_length=MAX_PHONE_INPUT, help_text="Any format; normalised to E.164.")

    @extend_schema(
        request=SessionRefRequestSerializer,
        responses={
            200: inline_serializer(
                "SessionRef",
                {
                    "ref": serializers.CharField(help_text="The session's opaque reference."),
                    "url": serializers.CharField(help_text="/api/v1/sessions/{ref}: GET, PUT, DELETE."),
                },
            ),
            400: OpenApiResponse(description="Not a phone number (error.code invalid_phone)."),
        },
        operation_id="sessions_ref",
        summary="Find a session's URL by phone",
    )
    def post(self, request: Request) -> Response:
        serializer = self.SessionRefRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        phone = normalize_phone(serializer.validated_data["phone"])
        return Response({"ref": phone_ref(phone), "url": session_url(request, phone)})
