import io
import logging
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command

from sessions_app.models import ServiceRequest
from sessions_app.services.workflow import engine
from tests.fixtures.crm import SEED_PHONE, stored_session


def test_sms_chat_talks_through_the_same_engine(crm, dynamodb):
    stdin = io.StringIO("hi\n3\nEngine won't start\n/quit\n")
    stdout = io.StringIO()
    call_command("sms_chat", "+1 206 555 0100", stdin=stdin, stdout=stdout)
    output = stdout.getvalue()
    assert "Hi Jordan! Lizzy here." in output
    assert "Describe the problem" in output
    assert "[MAIN_MENU, turn 3]" in output
    request = ServiceRequest.objects.get()
    assert request.problem_description == "Engine won't start"
    assert request.reference in output
    assert stored_session()["turnCount"] == 3


def test_sms_chat_refuses_an_invalid_phone(db):
    with pytest.raises(CommandError, match="not a valid phone number"):
        call_command("sms_chat", "12", stdin=io.StringIO(""), stdout=io.StringIO())


@pytest.fixture
def terminal() -> Iterator[io.StringIO]:
    """One stream for the chat's stdout and the log handler, as a terminal shows stdout and stderr together."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("LOG %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)
    assert handler.level == logging.NOTSET  # the command put the handler back as it found it


def _fail(*args):
    raise RuntimeError("CRM is down")


def test_the_chat_is_not_interleaved_with_log_lines_but_errors_still_show(crm, dynamodb, terminal, monkeypatch):
    monkeypatch.setitem(engine.EFFECTS, "service_request", _fail)
    stdin = io.StringIO("hi\n3\nEngine won't start\n/quit\n")
    call_command("sms_chat", SEED_PHONE, stdin=stdin, stdout=terminal)
    lines = terminal.getvalue().splitlines()
    # a log line lands wherever the cursor is, after "you> " say: look inside every line
    assert [line for line in lines if "LOG INFO" in line] == []  # "sms turn for …" stays out of the chat
    assert any("LOG ERROR" in line and "effect service_request" in line for line in lines)


def test_verbosity_2_keeps_every_log_line(crm, dynamodb, terminal):
    call_command("sms_chat", SEED_PHONE, "-v", "2", stdin=io.StringIO("hi\n/quit\n"), stdout=terminal)
    assert any("LOG INFO" in line and "sms turn for" in line for line in terminal.getvalue().splitlines())
