"""Phone numbers: parsed and normalised to E.164 with ``phonenumbers``, masked or hashed for logs."""

from __future__ import annotations

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
    try:
        number = phonenumbers.parse(text, region or settings.LIZZY_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(ERR_INVALID_PHONE.format(value=shown), details={"phone": "invalid"}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(ERR_INVALID_PHONE.format(value=shown), details={"phone": "invalid"})
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
