"""Integration: 20 messages for one phone at once, over real HTTP, against a real HTTP DynamoDB endpoint."""

import threading
import urllib.request
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from lizzy.dynamodb import dynamodb_get_item
from lizzy.tables import SESSIONS
from sessions_app.services.sessions import Session
from sessions_app.services.workflow.engine import turn_log_read
from tests.fixtures.crm import SEED_PHONE

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CONCURRENT = 20


def test_twenty_concurrent_messages_for_one_phone_are_each_applied_once(live_dynamodb, live_server, settings, crm):
    settings.TWILIO_AUTH_TOKEN = "live-secret"
    url = f"{live_server.url}/api/v1/sms/inbound"
    validator = RequestValidator("live-secret")
    barrier = threading.Barrier(CONCURRENT)
    statuses: dict[str, int] = {}

    def send(index: int) -> None:
        fields = {"From": SEED_PHONE, "To": "+18005551212", "Body": "HELP", "MessageSid": f"SMlive{index:026d}"}
        request = urllib.request.Request(  # noqa: S310 - a loopback URL the test built
            url,
            data=urlencode(fields).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": validator.compute_signature(url, fields),
            },
        )
        barrier.wait()
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            statuses[fields["MessageSid"]] = response.status

    threads = [threading.Thread(target=send, args=(index,)) for index in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses.values()) == [200] * CONCURRENT
    item = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE}, consistent=True)
    assert item["turnCount"] == CONCURRENT
    history = turn_log_read(Session.from_document(item)).history
    assert sorted(entry["sid"] for entry in history) == sorted(statuses)
    assert item["version"] == CONCURRENT
