"""Server-sent events of session changes, and presence of ops staff viewing a session."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lizzy.permissions import API_EVENTS_READ, LIVE_SESSIONS_VIEW, HasRequiredPermissions, IsStaff
from lizzy.redis import RedisUnavailable, json_dumps
from lizzy.stream_slots import StreamLease, stream_lease_acquire
from sessions_app.apis.sessions import REF_PARAMETER, SessionAddressedApi
from sessions_app.services.events import presence_leave, presence_list, presence_touch, session_events_stream

MAX_STREAM_SECONDS = 300  # clients (EventSource) reconnect by themselves; bounded streams free workers


class EventStreamRenderer(BaseRenderer):
    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # noqa: ANN001, ANN201
        return data


class LeasedStream:
    """The stream's iterator: its slots are given back when it ends, or when the server closes the response
    (client gone, worker stopping); Django calls ``close()`` on a streaming response's iterator."""

    def __init__(self, chunks: Iterator[str], lease: StreamLease) -> None:
        self._chunks = chunks
        self._lease = lease

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._chunks
        finally:
            self._lease.release()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._lease.release()


def _sse(events: Iterator[dict | None]) -> Iterator[str]:
    yield "retry: 3000\n\n"
    try:
        for event in events:
            if event is None:
                yield ": keep-alive\n\n"
            else:
                yield f"event: {event['type']}\ndata: {json_dumps(event)}\n\n"
    except RedisUnavailable:
        yield 'event: error\ndata: {"error": "redis_unavailable"}\n\n'


class SessionEventsApi(APIView):
    required_permissions = {"GET": (API_EVENTS_READ,)}
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    class FilterSerializer(serializers.Serializer):
        seconds = serializers.IntegerField(required=False, min_value=1, max_value=MAX_STREAM_SECONDS, default=60)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=10000)

    @extend_schema(
        parameters=[FilterSerializer],
        # Each server-sent event, as EventSource parses it: its type and a JSON document in ``data``.
        responses={
            (200, "text/event-stream"): inline_serializer(
                "SessionEvent",
                {
                    "event": serializers.CharField(help_text="session.created, session.updated, ... or error"),
                    "data": serializers.CharField(help_text="The event as a JSON document."),
                },
            )
        },
        summary="Stream events",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        lease = stream_lease_acquire(user_id=request.user.pk, seconds=params["seconds"])  # 429 when full
        stream = session_events_stream(max_seconds=params["seconds"], limit=params.get("limit"))
        response = StreamingHttpResponse(LeasedStream(_sse(stream), lease), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx must not buffer the stream
        return response


class SessionPresenceApi(SessionAddressedApi):
    """POST while the page is open (every ~10 s) to stay listed; GET to see who is looking; DELETE on leave.

    The answer names staff users: only staff who may view live sessions use it.
    """

    permission_classes = [IsStaff, HasRequiredPermissions]
    required_permissions = dict.fromkeys(("GET", "POST", "DELETE"), (LIVE_SESSIONS_VIEW,))
    path_suffix = "/presence"

    @extend_schema(
        request=None,
        parameters=[REF_PARAMETER],
        responses=inline_serializer("Presence", {"viewers": serializers.ListField(child=serializers.CharField())}),
        summary="Mark yourself as viewing a session",
    )
    def post(self, request: Request, ref: str) -> Response:
        viewers = presence_touch(phone=self.phone, viewer=request.user.get_username())
        return Response({"viewers": viewers})

    @extend_schema(
        parameters=[REF_PARAMETER],
        responses=inline_serializer("PresenceList", {"viewers": serializers.ListField(child=serializers.CharField())}),
        summary="Who is viewing a session",
    )
    def get(self, request: Request, ref: str) -> Response:
        return Response({"viewers": presence_list(phone=self.phone)})

    @extend_schema(request=None, parameters=[REF_PARAMETER], responses={204: None}, summary="Stop viewing a session")
    def delete(self, request: Request, ref: str) -> Response:
        presence_leave(phone=self.phone, viewer=request.user.get_username())
        return Response(status=204)
