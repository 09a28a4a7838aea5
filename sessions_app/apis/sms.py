"""The SMS provider's webhook: Twilio-compatible form fields in, TwiML out.

The only unauthenticated write of the API: the caller proves it is Twilio with ``X-Twilio-Signature``
(checked with the ``twilio`` package whenever ``TWILIO_AUTH_TOKEN`` is set; production refuses to start
without it). Input is checked before anything is read or written, so bad input changes nothing.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from lizzy.errors import ApplicationError, ValidationFailed
from lizzy.phone import InvalidPhoneNumber, hash_phone, normalize_phone
from sessions_app.services.workflow import sms_message_handle

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600  # the longest SMS Twilio delivers (concatenated segments)
MAX_REQUEST_BYTES = 64 * 1024  # Twilio's form is a few hundred bytes; anything near this is not Twilio
MAX_SID_CHARS = 64
# A MessageSid answered once, with its reply, for LIZZY_SMS_REPLAY_WINDOW_SECONDS: a signed request replayed
# after the session's own log (25 entries) forgot it gets the same answer and changes nothing.
REPLAY_KEY = "lizzy:sms-replay:{sid}"

ERR_SIGNATURE_MISSING = "X-Twilio-Signature is missing; this endpoint accepts only signed Twilio requests."
ERR_SIGNATURE_INVALID = "X-Twilio-Signature does not match this request."
ERR_CONTENT_TYPE = "Send the fields form-encoded (application/x-www-form-urlencoded), as Twilio does."
ERR_NOT_UTF8 = "The request body is not valid UTF-8."
ERR_TOO_LARGE = "The request body is larger than {limit} bytes."
ERR_FROM_MISSING = "From is required: the sender's phone number."
ERR_BODY_EMPTY = "Body is empty; nothing to answer."
ERR_BODY_TOO_LONG = "Body has {length} characters; an SMS carries at most {limit}."
ERR_SID_MISSING = "MessageSid is required: it makes retried deliveries safe."
ERR_SID_INVALID = "MessageSid must be 1 to 64 letters and digits."


class SignatureInvalid(ApplicationError):
    code = "invalid_signature"
    http_status = status.HTTP_403_FORBIDDEN


class UnsupportedMediaType(ApplicationError):
    code = "unsupported_media_type"
    http_status = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class RequestTooLarge(ApplicationError):
    code = "request_too_large"
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def _form(raw: bytes) -> MultiValueDict:
    """Parse the form strictly: Django would silently replace invalid UTF-8 with U+FFFD."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(ERR_NOT_UTF8) from exc
    form = MultiValueDict()
    for name, value in pairs:
        form.appendlist(name, value)
    return form


def _validation_url(request: Request) -> str:
    """The URL Twilio signed: behind a proxy the request's own idea of its URL may differ."""
    base = settings.LIZZY_WEBHOOK_BASE_URL
    if base:
        return base.rstrip("/") + request.get_full_path()
    return request.build_absolute_uri()


def _check_signature(request: Request, form: MultiValueDict) -> None:
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        return
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise SignatureInvalid(ERR_SIGNATURE_MISSING)
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    if not RequestValidator(token).validate(_validation_url(request), form, signature, algorithm=algorithm):
        logger.warning("rejected an SMS webhook with a wrong signature")
        raise SignatureInvalid(ERR_SIGNATURE_INVALID)


def _answered_reply(sid: str) -> str | None:
    """The reply a MessageSid already got, or None. A cache outage must not stop the webhook: it then
    falls back to the session's own de-duplication log."""
    try:
        entry = caches[settings.SHARED_CACHE].get(REPLAY_KEY.format(sid=sid))
    except Exception:  # the shared cache is away (Redis down): the session log still de-duplicates
        logger.warning("sms replay record unavailable; relying on the session's message log")
        return None
    return entry.get("reply") if isinstance(entry, dict) else None


def _answered_record(sid: str, reply: str) -> None:
    try:
        caches[settings.SHARED_CACHE].set(
            REPLAY_KEY.format(sid=sid), {"reply": reply}, timeout=settings.LIZZY_SMS_REPLAY_WINDOW_SECONDS
        )
    except Exception:
        logger.warning("could not write the sms replay record")


def twiml(reply: str) -> HttpResponse:
    """TwiML for the reply; an empty reply is an empty ``<Response/>`` (opted-out numbers get nothing)."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return HttpResponse(str(response), content_type="text/xml; charset=utf-8")


class SmsInboundApi(APIView):
    """``POST /api/v1/sms/inbound``: one inbound SMS, answered with TwiML."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # signed by Twilio, which calls from many addresses; never a token's budget
    parser_classes = [FormParser]

    class SmsInboundSerializer(serializers.Serializer):
        """The Twilio fields Lizzy reads; Twilio sends more (AccountSid, NumMedia...), all signed."""

        From = serializers.CharField(help_text="Sender, E.164.")
        To = serializers.CharField(required=False, help_text="The dealership's number.")
        Body = serializers.CharField(max_length=MAX_BODY_CHARS)
        MessageSid = serializers.CharField(max_length=MAX_SID_CHARS, help_text="Twilio's id of this message.")

    @extend_schema(
        operation_id="sms_inbound",
        summary="Inbound SMS webhook (Twilio)",
        description=(
            "Called by Twilio for every inbound SMS. Signed with X-Twilio-Signature when the server has "
            "TWILIO_AUTH_TOKEN. Answers TwiML; a retried MessageSid gets the same reply without advancing."
        ),
        auth=[],
        request={"application/x-www-form-urlencoded": SmsInboundSerializer},
        parameters=[OpenApiParameter(SIGNATURE_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            (200, "text/xml"): OpenApiResponse(OpenApiTypes.STR, description="TwiML <Response>"),
            (400, "application/json"): inline_serializer("SmsError", {"error": serializers.DictField()}),
            (403, "application/json"): OpenApiResponse(description="Missing or wrong signature"),
            (503, "application/json"): OpenApiResponse(description="Too many concurrent messages for the phone"),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType(ERR_CONTENT_TYPE)
        raw = request.body
        if len(raw) > MAX_REQUEST_BYTES:
            raise RequestTooLarge(ERR_TOO_LARGE.format(limit=MAX_REQUEST_BYTES))
        form = _form(raw)
        _check_signature(request, form)
        sender = (form.get("From") or "").strip()
        if not sender:
            raise ValidationFailed(ERR_FROM_MISSING, details={"From": "required"})
        try:
            phone = normalize_phone(sender)
        except InvalidPhoneNumber as exc:
            raise ValidationFailed(exc.message, details={"From": "invalid"}) from exc
        body = (form.get("Body") or "").strip()
        if not body:
            raise ValidationFailed(ERR_BODY_EMPTY, details={"Body": "empty"})
        if len(body) > MAX_BODY_CHARS:
            raise ValidationFailed(
                ERR_BODY_TOO_LONG.format(length=len(body), limit=MAX_BODY_CHARS), details={"Body": "too_long"}
            )
        sid = (form.get("MessageSid") or "").strip()
        if not sid:
            raise ValidationFailed(ERR_SID_MISSING, details={"MessageSid": "required"})
        if len(sid) > MAX_SID_CHARS or not sid.isalnum() or not sid.isascii():
            raise ValidationFailed(ERR_SID_INVALID, details={"MessageSid": "invalid"})
        answered = _answered_reply(sid)
        if answered is not None:
            logger.info("sms %s answered from the replay record; nothing changed", hash_phone(phone))
            return twiml(answered)
        result = sms_message_handle(phone=phone, text=body, message_sid=sid)
        _answered_record(sid, result.reply)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sms reply for %s: %d chars", hash_phone(phone), len(result.reply))
        return twiml(result.reply)


sms_inbound_view = csrf_exempt(SmsInboundApi.as_view())
