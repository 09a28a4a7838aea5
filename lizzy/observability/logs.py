"""Structured logs: one JSON object per line, a request id on every record, no phone or email in clear.

The redaction runs twice on purpose: ``RedactingFilter`` rewrites the record's message, arguments and
``extra`` fields (so any handler, JSON or not, sees the redacted text) and ``JsonFormatter`` redacts
what it writes again, including tracebacks, which are formatted after filters run.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import unquote

import phonenumbers
from django.conf import settings

from lizzy.phone import mask_phone
from lizzy.scrub import secrets_scrub

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("lizzy_request_id", default="-")

# Bare E.164 ("+12065550100"): the form the product stores.
PHONE_PATTERN = re.compile(r"\+[1-9]\d{6,14}(?!\d)")
# A digit run that could be a number as people type it ("+44 20 7946 0958", "(206) 555-0100"): only
# then is phonenumbers' matcher (the library made for finding numbers in text, and slower) consulted.
CANDIDATE_PATTERN = re.compile(r"\d[\d\s().-]{5,}\d")
# A run of digit groups as people write numbers, maybe with a leading "+" or "(" ("(206) 555-0100 404"):
# the groups are tried longest first, so a status code or a count after the number cannot hide it.
RUN_PATTERN = re.compile(r"[+(]?\d[\d().\-/ \t]*\d\)?")
GROUP_SPLIT = re.compile(r"[ \t/]+")
DATE_PIECE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}[.-]\d{1,2}[.-]\d{4}$")
# Percent-encoded separators a number in a URL path may carry ("(206)%20555-0100", "%2B12065550100").
ENCODED_SEPARATORS = re.compile(r"%(20|2B|28|29|2D|2E)", re.I)
# A run of percent escapes: decoded when all it holds is what a number may (UTF-8 dashes and spaces, too).
ENCODED_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# What phonenumbers accepts between digits beyond ASCII (its VALID_PUNCTUATION, and its plus signs), read as the
# ASCII the patterns below know: "206\u00a0555\u00a00100", "+1\u2011206\u2011555\u20110100", "\uff08206\uff09...".
_AS_ASCII = {
    **dict.fromkeys("\u00a0\u00ad\u200b\u2060\u3000", " "),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d", "-"),
    "\uff08": "(",
    "\uff09": ")",
    "\uff0e": ".",
    "\uff0f": "/",
    "\uff0b": "+",
    "\uff3b": "(",
    "\uff3d": ")",
}
PUNCTUATION_AS_ASCII = str.maketrans(_AS_ASCII)
_NUMBER_CHARACTERS = frozenset(" ().-/+[]~") | frozenset(_AS_ASCII)
# Control characters written into a text log would start a forged line ("%0A" in a path): escaped.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
EMAIL_REPLACEMENT = "[email redacted]"
# Attributes every LogRecord has; anything else came from ``extra=`` and goes into the JSON object.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_REDACTED_MARK = "lizzy_redacted"  # set by RedactingFilter so the formatter does not redo its work


SHORT_NUMBER_DIGITS = 9  # below this (Saint Helena's +290 22158), country code and last four give it all away


def _mask(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    if len(digits) < SHORT_NUMBER_DIGITS:
        return ("+" if raw.lstrip().startswith("+") else "") + "*" * max(len(digits) - 2, 0) + digits[-2:]
    if raw.lstrip().startswith("+"):
        return mask_phone("+" + digits)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def _default_region() -> str:
    try:
        return settings.LIZZY_DEFAULT_PHONE_REGION
    except Exception:  # logging before settings are configured
        return "US"


def _valid(candidate: str, region: str) -> bool:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _mask_runs(text: str, region: str) -> str:
    """Mask every valid number inside a run of digit groups, trying the longest group sequence first."""

    def run(match: re.Match[str]) -> str:
        raw = match.group(0)
        pieces = [piece for piece in GROUP_SPLIT.split(raw) if piece]
        if len(pieces) > 12 or any(DATE_PIECE.match(piece) for piece in pieces):
            return raw  # a table of figures or a date, not a number
        out: list[str] = []
        start = 0
        while start < len(pieces):
            for end in range(len(pieces), start, -1):
                candidate = " ".join(pieces[start:end])
                if sum(char.isdigit() for char in candidate) >= 7 and _valid(candidate, region):
                    out.append(_mask(candidate))
                    start = end
                    break
            else:
                out.append(pieces[start])
                start += 1
        return " ".join(out) if out != pieces else raw

    return RUN_PATTERN.sub(run, text)


def _decoded_run(match: re.Match[str]) -> str:
    """A run of escapes as text when it holds only digits and number punctuation; else only its ASCII
    separators decoded (a ``%0A`` stays encoded: it would break the line)."""
    raw = match.group(0)
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and all(char.isdecimal() or char in _NUMBER_CHARACTERS for char in decoded):
        return decoded
    return ENCODED_SEPARATORS.sub(lambda found: chr(int(found.group(1), 16)), raw)


def escape_controls(text: str) -> str:
    """``\n``, ``\r`` and other control characters as visible escapes: one record is one line."""
    return CONTROL_CHARACTERS.sub(lambda match: repr(match.group(0))[1:-1], text)


def redact(text: str) -> str:
    """Mask phone numbers (last four digits kept) and replace email addresses."""
    if not text:
        return text
    text = EMAIL_PATTERN.sub(EMAIL_REPLACEMENT, text)
    if "%" in text:
        text = ENCODED_RUN.sub(_decoded_run, text)
    text = text.translate(PUNCTUATION_AS_ASCII)
    if CANDIDATE_PATTERN.search(text):
        masked = _mask_runs(text, _default_region())
        if masked == text:
            # Nothing found by digit groups: phonenumbers' own matcher (letters, extensions) has the last word.
            # Valid numbers only: "possible" would swallow a status code that follows a number.
            leniency = phonenumbers.Leniency.VALID
            for found in reversed(list(phonenumbers.PhoneNumberMatcher(text, _default_region(), leniency=leniency))):
                masked = masked[: found.start] + _mask(found.raw_string) + masked[found.end :]
        text = masked
    # E.164-shaped strings the matcher rejects (unassigned ranges, test numbers) are masked anyway.
    return PHONE_PATTERN.sub(lambda match: _mask(match.group(0)), text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return secrets_scrub(redact(value))
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites message, arguments and ``extra`` fields of every record it sees; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg} {record.args}"
        record.msg = escape_controls(secrets_scrub(redact(message)))
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES:
                setattr(record, name, _redact_value(value))
        setattr(record, _REDACTED_MARK, True)
        return True


class RequestIdFilter(logging.Filter):
    """Stamps the current request id (or ``-`` outside a request) on the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        clean = (lambda value: value) if getattr(record, _REDACTED_MARK, False) else _redact_value
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": clean(record.getMessage()),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name not in payload and name != _REDACTED_MARK:
                payload[name] = clean(value)
        if record.exc_info:
            payload["exception"] = secrets_scrub(redact(self.formatException(record.exc_info)))
        if record.stack_info:
            payload["stack"] = secrets_scrub(redact(self.formatStack(record.stack_info)))
        # Objects in ``extra`` (Django's ``request`` on django.request records, whose repr holds the path and
        # so a phone) are turned into text here, after the filter ran: redact that text too.
        return json.dumps(payload, default=lambda value: redact(str(value)), ensure_ascii=False)
