import io
import json
import logging

import pytest

from lizzy.observability.logs import JsonFormatter, RedactingFilter, RequestIdFilter, redact

PHONE = "+12065550100"
EMAIL = "jordan.rivera@example.com"


@pytest.fixture
def captured():
    """The production handler chain (request id, redaction, JSON) on a logger of its own."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_phone_and_email_never_appear_in_message_args_extra_or_traceback(captured):
    logger, stream = captured
    # when every way a number or address can reach a record is used
    logger.info("session for %s (%s)", PHONE, EMAIL)
    logger.warning("inline " + PHONE + " and " + EMAIL)  # noqa: G003 - a careless caller, on purpose
    logger.info("formatted +1 (206) 555-0100 and 206-555-0100", extra={"customer": {"phone": PHONE, "email": EMAIL}})
    try:
        raise ValueError(f"bad phone {PHONE} for {EMAIL}")
    except ValueError:
        logger.exception("failed")

    # then nothing leaks, and each record is one JSON object on one line
    output = stream.getvalue()
    for leaked in (PHONE, "2065550100", "555-0100", EMAIL, "jordan.rivera"):
        assert leaked not in output
    records = lines(stream)
    assert len(records) == 4
    assert records[0]["message"] == "session for +1******0100 ([email redacted])"
    assert records[2]["customer"]["phone"] == "+1******0100"
    assert "ValueError" in records[3]["exception"]


def test_a_record_outside_a_request_has_a_placeholder_request_id(captured):
    logger, stream = captured
    logger.info("background work")
    assert lines(stream)[0]["request_id"] == "-"


def test_redact_leaves_ordinary_numbers_alone():
    assert redact("processed 250 items in 12.5 s, version 17") == "processed 250 items in 12.5 s, version 17"


def test_redact_masks_international_formats_and_keeps_what_follows():
    assert redact("+44 20 7946 0958 and +442079460958 401") == "+4*******0958 and +4*******0958 401"
    assert redact("unassigned +19995550100") == "unassigned +1******0100"
    assert redact("+1 (206) 555-0100 replied") == "+1******0100 replied"


@pytest.mark.django_db
def test_request_id_is_echoed_and_stamped_on_the_access_log_line(client, caplog):
    caplog.set_level(logging.INFO, logger="lizzy.request")
    response = client.get(f"/api/v1/sessions/{PHONE}", HTTP_X_REQUEST_ID="req-abc.123")
    assert response["X-Request-ID"] == "req-abc.123"
    record = next(r for r in caplog.records if r.name == "lizzy.request")
    assert record.request_id == "req-abc.123"
    assert record.status == 401


@pytest.mark.django_db
def test_a_request_without_a_usable_id_gets_a_generated_one(client):
    first = client.get("/healthz", HTTP_X_REQUEST_ID="not ok; <script>")
    second = client.get("/healthz")
    assert first["X-Request-ID"] != "not ok; <script>"
    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
def test_the_configured_console_handler_redacts_the_access_log(client):
    # The settings' own handler chain (not a test double): the access line carries the phone in its path.
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        client.get(f"/api/v1/sessions/{PHONE}")
    finally:
        handler.setStream(previous)
    err = stream.getvalue()
    assert "GET /api/v1/sessions/+1******0100 401" in err
    assert PHONE not in err


def test_the_formatter_alone_still_redacts(captured):
    # given a handler someone configured without the filter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.redaction.formatter-only")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("customer %s wrote from %s", EMAIL, PHONE, extra={"to": PHONE})
    finally:
        logger.removeHandler(handler)
    assert PHONE not in stream.getvalue()
    assert EMAIL not in stream.getvalue()
