"""Phone numbers: parsed and normalised to E.164 with ``phonenumbers``, masked or hashed for logs."""

from __future__ import annotations

import functools
import hashlib
import hmac

import phonenumbers
from django.conf import settings

from lizzy.errors import ValidationFailed

ERR_INVALID_PHONE = "{value!r} is not a valid phone number; use E.164, for example +12065550100."
MAX_PHONE_INPUT = 64


class InvalidPhoneNumber(ValidationFailed):
    code = "invalid_phone"


def normalize_phone(raw: str, *, region: str | None = None) -> str:
    """Return ``raw`` in E.164 (``+12065550100``) or raise ``InvalidPhoneNumber``."""
    text = (raw or "").strip()
    shown = text[:MAX_PHONE_INPUT]
    if not text or len(text) > MAX_PHONE_INPUT:
        raise InvalidPhoneNumber(ERR_INVALID_PHONE.format(value=shown), details={"phone": "invalid"})
    e164 = _e164(text, region or settings.LIZZY_DEFAULT_PHONE_REGION)
    if e164 is None:
        raise InvalidPhoneNumber(ERR_INVALID_PHONE.format(value=shown), details={"phone": "invalid"})
    return e164


@functools.lru_cache(maxsize=4096)
def _e164(text: str, region: str) -> str | None:
    """E.164 form of a valid number, None for an invalid one. Cached: every webhook turn parses the
    sender again, and a parse costs more than the rest of the request's validation together."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """``+12065550100`` → ``+1******0100``: enough for a person to tell sessions apart, not to dial."""
    if not phone or len(phone) < 6:
        return "***"
    return phone[:2] + "*" * (len(phone) - 6) + phone[-4:]


def hash_phone(phone: str) -> str:
    """A keyed, stable pseudonym for a phone number (events, divergence samples, logs)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), phone.encode(), hashlib.sha256).hexdigest()
    return digest[:16]
