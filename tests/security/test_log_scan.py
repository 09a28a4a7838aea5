"""A log scan: drive conversations, API calls, failures and admin actions, capture every log record
at DEBUG, and look for phone numbers and email addresses in clear.

Two views are checked: what the configured handler writes (after lizzy.observability.logs' redaction),
and the product's own raw records before any filter (what a handler added later, without the filter,
would write).
"""

from __future__ import annotations

import io
import logging
import re
from urllib.parse import quote, urlencode

import pytest

from lizzy.dynamodb import reset_client
from lizzy.observability.logs import JsonFormatter, RedactingFilter, RequestIdFilter
from lizzy.phone import phone_ref
from tests.figures import record_figure
from tests.fixtures.services import free_port

E164 = re.compile(r"\+[1-9]\d{6,14}")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# What customers type: their number in other forms too, and an email address.
PHONES = ["+12065550100", "+12065550142", "+33612345678"]
# Django's own records (django.request puts the path in its message) rely on the handler's redaction;
# the product's own records must not need it.
PRODUCT_LOGGERS = ("lizzy", "sessions_app", "migration_app")
DIGIT_RUNS = ["2065550100", "2065550142", "612345678"]


STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        extras = {k: v for k, v in vars(record).items() if k not in STANDARD}
        if record.name.startswith(PRODUCT_LOGGERS):
            self.raw.append(f"{record.name}: {text} {extras}")


@pytest.fixture
def captured_logs():
    """Every record at DEBUG: raw (before filters) and as the product's JSON handler writes it."""
    stream = io.StringIO()
    written = logging.StreamHandler(stream)
    written.setLevel(logging.DEBUG)
    written.addFilter(RequestIdFilter())
    written.addFilter(RedactingFilter())
    written.setFormatter(JsonFormatter())
    raw = Capture()
    root = logging.getLogger()
    previous = root.level
    quiet = [logging.getLogger(name) for name in ("botocore", "urllib3", "django.request", "lizzy.request")]
    levels = [logger.level for logger in quiet]
    root.setLevel(logging.DEBUG)
    for logger in quiet:
        logger.setLevel(logging.DEBUG)
    root.addHandler(raw)  # first: sees records before the written handler's filters rewrite them
    root.addHandler(written)
    yield raw, stream
    root.removeHandler(written)
    root.removeHandler(raw)
    root.setLevel(previous)
    for logger, level in zip(quiet, levels, strict=True):
        logger.setLevel(level)


def _leaks(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        if E164.search(line) or EMAIL.search(line) or any(run in line for run in DIGIT_RUNS):
            found.append(line[:300])
    return found


def _sms(client, phone: str, text: str, sid: str):
    body = urlencode({"From": phone, "To": "+15005550006", "Body": text, "MessageSid": sid})
    return client.post("/api/v1/sms/inbound", body, content_type="application/x-www-form-urlencoded")


def test_no_phone_number_or_email_reaches_the_logs(
    captured_logs, crm, dynamodb, api_client, anonymous_client, ops_admin_client, client, settings
):
    raw, stream = captured_logs
    # conversations, including what customers type: numbers in several forms, an email address
    texts = ["hello", "MENU", "1", "my email is jordan.rivera@example.com", "call me on (206) 555-0142", "HELP"]
    for p_index, phone in enumerate(PHONES):
        for t_index, text in enumerate(texts):
            assert _sms(anonymous_client, phone, text, f"SM{p_index}x{t_index}").status_code == 200
    _sms(anonymous_client, "+1 206 555 0142 ext bad", "hi", "SMbad")  # invalid sender: 400
    _sms(anonymous_client, PHONES[0], "again", "SM0x0")  # a retried delivery
    # the sessions API: phones in URLs, bodies and errors
    for phone in PHONES:
        assert api_client.get(f"/api/v1/sessions/{quote(phone)}").status_code == 200
    api_client.put(f"/api/v1/sessions/{quote(PHONES[1])}", {"currentNode": "MAIN_MENU"}, format="json")  # 428
    api_client.get("/api/v1/sessions/not-a-phone-jordan@example.com")  # 400
    api_client.get(f"/api/v1/crm/customers/?phone={quote(PHONES[0])}")
    # admin: a failed sign-in with an email as user name, the live session pages, an action
    client.post("/admin/login/", {"username": "jordan.rivera@example.com", "password": "wrong"})
    ops_admin_client.get("/admin/ops/sessions/")
    ops_admin_client.post("/admin/ops/sessions/", {"q": PHONES[0]})  # the search by phone
    ops_admin_client.get(f"/admin/ops/sessions/{phone_ref(PHONES[0])}/")
    ops_admin_client.get(f"/admin/ops/sessions/{quote(PHONES[0])}/")  # an old link by phone: 404
    ops_admin_client.post(f"/admin/ops/sessions/{phone_ref(PHONES[2])}/reset/", {"version": "999"})  # stale
    session = api_client.get(f"/api/v1/sessions/{quote(PHONES[2])}").json()
    ops_admin_client.post(f"/admin/ops/sessions/{phone_ref(PHONES[2])}/reset/", {"version": session["version"]})
    # a failure path: DynamoDB unreachable while a message arrives
    settings.AWS_ENDPOINT_URL_DYNAMODB = f"http://127.0.0.1:{free_port()}"
    settings.DYNAMODB_MAX_ATTEMPTS = 1
    reset_client()
    assert _sms(anonymous_client, PHONES[1], "are you there? jordan.rivera@example.com", "SMdown").status_code == 503
    settings.AWS_ENDPOINT_URL_DYNAMODB = None
    reset_client()

    written = stream.getvalue().splitlines()
    record_figure(
        "security/log-scan",
        records=len(raw.raw),
        written_lines=len(written),
        leaks_written=len(_leaks(written)),
        leaks_raw=len(_leaks(raw.raw)),
    )
    assert len(raw.raw) >= 30, "too few records captured to mean anything"
    assert _leaks(written) == []
    assert _leaks(raw.raw) == [], "a record carries a phone or email in clear; only the handler's filter hid it"
