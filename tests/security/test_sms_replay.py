"""Finding 6: a signed webhook replayed after its MessageSid left the session's 25-entry log ran again.

Now every answered MessageSid is remembered with its reply in the shared cache for
LIZZY_SMS_REPLAY_WINDOW_SECONDS: a replay gets the same answer and changes nothing.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.cache import caches
from twilio.request_validator import RequestValidator

from sessions_app.apis.sms import REPLAY_KEY
from tests.figures import record_figure
from tests.fixtures.crm import SEED_PHONE, stored_session

URL = "/api/v1/sms/inbound"
TOKEN = "replay-test-token"  # noqa: S105 - a test value


def signed_post(client, body: str, sid: str):
    fields = {"From": SEED_PHONE, "To": "+18005551212", "Body": body, "MessageSid": sid}
    signature = RequestValidator(TOKEN).compute_signature(f"http://testserver{URL}", fields)
    return client.post(
        URL, urlencode(fields), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )


def test_a_replay_after_the_session_log_forgot_the_sid_changes_nothing(crm, dynamodb, client, settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    log_limit = settings.LIZZY_WORKFLOW_MESSAGE_LOG_LIMIT
    first = signed_post(client, "hi", "SMreplay0")
    for index in range(1, log_limit + 5):  # push SMreplay0 out of the session's own log
        assert signed_post(client, "MENU", f"SMreplay{index}").status_code == 200
    before = stored_session()

    replayed = signed_post(client, "hi", "SMreplay0")

    after = stored_session()
    assert replayed.status_code == 200
    assert replayed.content == first.content  # the answer it got then, not a new turn
    assert after["turnCount"] == before["turnCount"]  # was before + 1: the old message ran again
    assert after["version"] == before["version"]
    record_figure(
        "sms_replay", messages_after=log_limit + 4, turn_count_change=after["turnCount"] - before["turnCount"]
    )


def test_a_retry_of_a_message_that_failed_runs_normally(crm, dynamodb, client, settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    assert caches[settings.SHARED_CACHE].get(REPLAY_KEY.format(sid="SMnever")) is None
    response = signed_post(client, "hi", "SMnever")
    assert response.status_code == 200
    assert caches[settings.SHARED_CACHE].get(REPLAY_KEY.format(sid="SMnever"))["reply"]


def test_the_webhook_still_answers_when_the_shared_cache_is_away(crm, dynamodb, client, settings, monkeypatch):
    settings.TWILIO_AUTH_TOKEN = TOKEN

    class Away:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache away")

        set = get

    monkeypatch.setattr("sessions_app.apis.sms.caches", {settings.SHARED_CACHE: Away()})
    assert signed_post(client, "hi", "SMaway1").status_code == 200
    assert signed_post(client, "hi", "SMaway1").status_code == 200  # the session's own log de-duplicates
    assert stored_session()["turnCount"] == 1
