"""Phone numbers: parsed and normalised to E.164 with ``phonenumbers``, masked or hashed for logs."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac

import phonenumbers
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from django.conf import settings

from lizzy.errors import ValidationFailed

ERR_INVALID_PHONE = "{value!r} is not a valid phone number; use E.164, for example +12065550100."
MAX_PHONE_INPUT = 64
MAX_PHONE_REF = 128  # a reference to a 64-character input is 107 characters
PHONE_REF_PURPOSE = b"lizzy.phone-ref.v1"
SEARCH_REF_PURPOSE = b"lizzy.search-ref.v1"  # its own key: a sealed search term is never a session link
MAX_SEARCH_TERM = 200  # characters; a longer search is cut (no one types more into an admin search box)
MAX_SEARCH_REF = 4 * (16 + 4 * MAX_SEARCH_TERM) // 3 + 4


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


class InvalidPhoneRef(ValidationFailed):
    code = "invalid_phone_ref"


ERR_INVALID_PHONE_REF = "That link does not name a session (it may come from another installation)."


@functools.lru_cache(maxsize=8)
def _ref_cipher(secret_key: str, purpose: bytes = PHONE_REF_PURPOSE) -> AESSIV:
    key = hmac.new(secret_key.encode(), purpose, hashlib.sha512).digest()  # 64 bytes: AES-256-SIV
    return AESSIV(key)


def _seal(text: str, purpose: bytes) -> str:
    sealed = _ref_cipher(settings.SECRET_KEY, purpose).encrypt(text.encode(), None)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _unseal(ref: str, purpose: bytes, max_chars: int) -> str | None:
    """What ``_seal`` sealed under SECRET_KEY or one of SECRET_KEY_FALLBACKS; None for anything else."""
    if not ref or len(ref) > max_chars:
        return None
    try:
        sealed = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (binascii.Error, ValueError):
        return None
    # A link made before a SECRET_KEY rotation still works while the old key is a fallback.
    for secret_key in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
        try:
            return _ref_cipher(secret_key, purpose).decrypt(sealed, None).decode()
        except (ValueError, InvalidTag, UnicodeDecodeError):
            continue
    return None


def phone_ref(phone: str) -> str:
    """An opaque, URL-safe reference to a phone number, for links (``/admin/ops/sessions/<ref>/``).

    Access logs and browser history must not hold phone numbers; a hash would need a lookup table, so
    the number is encrypted instead (AES-SIV keyed from SECRET_KEY: deterministic, so one session keeps
    one URL, and authenticated, so a forged or edited reference is refused, never decoded to garbage).
    """
    return _seal(phone, PHONE_REF_PURPOSE)


def phone_from_ref(ref: str) -> str:
    """The phone a ``phone_ref`` names; ``InvalidPhoneRef`` for anything else."""
    phone = _unseal(ref, PHONE_REF_PURPOSE, MAX_PHONE_REF)
    if phone is None:
        raise InvalidPhoneRef(ERR_INVALID_PHONE_REF)
    return phone


def search_ref(term: str) -> str:
    """A search term (a phone, an e-mail, a name) sealed for a URL (``?q=<ref>``), the same way as ``phone_ref``
    but under its own key. Signing (``django.core.signing``) would not do: it authenticates, it does not hide."""
    return _seal(term[:MAX_SEARCH_TERM], SEARCH_REF_PURPOSE)


def search_from_ref(ref: str) -> str | None:
    """The term a ``search_ref`` sealed; None when ``ref`` is not one (typed by hand, forged, another site's)."""
    return _unseal(ref, SEARCH_REF_PURPOSE, MAX_SEARCH_REF)
