import io

import pytest
from django.core.management import CommandError, call_command

from sessions_app.models import ServiceRequest
from tests.fixtures.crm import stored_session


def test_sms_chat_talks_through_the_same_engine(crm, dynamodb):
    stdin = io.StringIO("hi\n3\nEngine won't start\n/quit\n")
    stdout = io.StringIO()
    call_command("sms_chat", "+1 206 555 0100", stdin=stdin, stdout=stdout)
    output = stdout.getvalue()
    assert "Hi Jordan! Lizzy here." in output
    assert "Describe the problem" in output
    assert "[MAIN_MENU, turn 3]" in output
    assert ServiceRequest.objects.get().problem_description == "Engine won't start"
    assert stored_session()["turnCount"] == 3


def test_sms_chat_refuses_an_invalid_phone(db):
    with pytest.raises(CommandError, match="not a valid phone number"):
        call_command("sms_chat", "12", stdin=io.StringIO(""), stdout=io.StringIO())
