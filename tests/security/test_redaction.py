"""Finding 6: every phone number the API accepts is redacted in logs, in paths and messages, JSON and text,
whatever follows it; a control character in a path cannot forge a log line.

The checker is independent of the redactor: a number leaked when its national significant number still
appears among the digits of what was written.
"""

from __future__ import annotations

import io
import json
import logging
import re
from urllib.parse import quote

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lizzy.errors import ValidationFailed
from lizzy.observability.logs import JsonFormatter, RedactingFilter, RequestIdFilter, redact
from lizzy.phone import normalize_phone
from tests.figures import record_figure

FORMATS = {
    "e164": phonenumbers.PhoneNumberFormat.E164,
    "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    "national": phonenumbers.PhoneNumberFormat.NATIONAL,
    "rfc3966": phonenumbers.PhoneNumberFormat.RFC3966,
}
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _accepted(region: str, kind: str, style: str) -> tuple[str, str] | None:
    """(text as written, national significant number) for an example number the API accepts, or None."""
    number = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType, kind))
    if number is None:
        return None
    text = phonenumbers.format_number(number, FORMATS[style])
    try:
        normalize_phone(text)
    except ValidationFailed:
        return None  # the API refuses it too (a national format of another region): nothing to hide
    return text, phonenumbers.national_significant_number(number)


# Digits of the line that are not the message's: the record's time (text and JSON formats) and the API's "v1".
# Left in, "…06,622 … /api/v1/sessions/+******58" reads as 622·1·58 and "finds" the number 22158.
NOT_THE_MESSAGE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:[+-]\d{2}:\d{2}|Z)?|/api/v1/")


def leaked(written: str, nsn: str) -> bool:
    return nsn in re.sub(r"\D", "", NOT_THE_MESSAGE.sub(" ", written))


def test_the_leak_check_ignores_the_records_time_and_the_api_version():
    assert not leaked("2026-12-01 18:40:06,622 INFO t [-] GET /api/v1/sessions/+******58 428", "22158")
    assert not leaked('{"time": "2026-12-01T18:40:06.622+00:00", "message": "GET /api/v1/s/+******58"}', "22158")
    assert leaked("2026-12-01 18:40:06,622 INFO t [-] GET /api/v1/sessions/+290 22158 428", "22158")


def _logged(message: str, *args: object, text: bool) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(TEXT_FORMAT) if text else JsonFormatter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    region=st.sampled_from(REGIONS),
    kind=st.sampled_from(["MOBILE", "FIXED_LINE", "TOLL_FREE"]),
    style=st.sampled_from(sorted(FORMATS)),
    status=st.sampled_from([200, 201, 204, 400, 404, 412, 428, 500]),
    encoded=st.booleans(),
    text=st.booleans(),
    tail=st.sampled_from(["", "/presence", "?limit=50"]),
)
def test_every_accepted_number_is_redacted_in_an_access_line(region, kind, style, status, encoded, text, tail):
    found = _accepted(region, kind, style)
    if found is None:
        return
    written, nsn = found
    path = "/api/v1/sessions/" + (quote(written, safe="") if encoded else written) + tail
    line = _logged("%s %s %s", "GET", path, status, text=text)
    assert not leaked(line, nsn), line


@pytest.mark.parametrize(
    "number",
    ["(206) 555-0100", "206-555-0100", "206.555.0100", "+1 206 555 0100", "+44 20 7946 0958", "+33 1 42 68 53 00"]
    + ["+290 22158"],  # Saint Helena: five digits
)
@pytest.mark.parametrize("text", [True, False])
def test_the_readmes_formats_followed_by_a_status_code(number, text):
    """The status code after the path defeated the redactor: "(206) 555-0100 404" stayed in clear."""
    nsn = phonenumbers.national_significant_number(phonenumbers.parse(number, "US"))
    for path in (f"/api/v1/sessions/{number}", f"/api/v1/sessions/{quote(number, safe='')}"):
        for status in (200, 404, 428):
            line = _logged("%s %s %s", "GET", path, status, text=text)
            assert not leaked(line, nsn), line
            message = _logged("customer texted %s about order 1234567", number, text=text)
            assert not leaked(message, nsn), message


def test_a_newline_in_a_path_does_not_forge_a_text_log_line():
    line = _logged(
        "%s %s %s", "GET", "/api/v1/x\n2026-01-01 00:00:00,000 INFO lizzy.request [-] forged", 404, text=True
    )
    assert line.count("\n") == 1  # one record, one line
    assert "\\n2026-01-01" in line


def test_a_newline_in_a_path_stays_inside_one_json_object():
    line = _logged("%s %s %s", "GET", '/x\r\n{"level": "ERROR"}', 404, text=False)
    assert line.count("\n") == 1
    assert json.loads(line)["message"].startswith("GET /x")


def test_dates_counts_and_times_are_left_alone():
    for text in ("took 12 ms for 200 items at 2026-11-21 10:00:01", "order 1234567 total 55", "GET /healthz 200"):
        assert redact(text) == text


def test_the_access_log_of_a_real_request_has_no_number(client, db, dynamodb, caplog):
    number = "(206) 555-0100"
    with caplog.at_level(logging.INFO, logger="lizzy.request"):
        client.get(f"/api/v1/sessions/{quote(number)}")
    lines = [record.getMessage() for record in caplog.records if record.name == "lizzy.request"]
    assert lines
    assert not [line for line in lines if leaked(line, "2065550100")]
    record_figure("redaction_access_line", line=lines[-1])
