"""Review of issue 18, finding 4: event streams are bounded per user, per process and in total, and a stream
that is refused, rejected or closed early gives every slot back. In-process (Django's test client, the shared
cache on the namespace's Redis or database); the gunicorn test of the webhook's threads is tests/security's.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core import signals
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from lizzy import stream_slots
from lizzy.roles import VIEWER_GROUP
from tests.security.test_permission_model import _user

URL = "/api/v1/events/sessions"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LIZZY_EVENT_STREAMS_PER_PROCESS = 1000
    settings.LIZZY_EVENT_STREAMS_PER_USER = 2
    settings.LIZZY_EVENT_STREAMS_TOTAL = 3
    stream_slots._process_open[0] = 0
    yield
    stream_slots._process_open[0] = 0


def _token_client(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def viewers(db):
    return [_user(f"r18-stream-{index}", staff=True, group=VIEWER_GROUP) for index in range(4)]


def _close(response) -> None:
    """What the server does when the client goes away: close the response (as Django's test client does, without
    closing the test's database connection on ``request_finished``)."""
    signals.request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def opened():
    responses = []
    yield responses
    for response in responses:
        _close(response)


def _open(client: APIClient, opened: list, seconds: int = 300):
    response = client.get(URL, {"seconds": seconds})
    if response.status_code == 200:
        opened.append(response)
    return response.status_code


def test_one_user_cannot_open_more_streams_than_the_per_user_bound_from_several_clients(viewers, opened):
    first, second, third = (_token_client(viewers[0]) for _ in range(3))
    assert [_open(first, opened), _open(second, opened), _open(third, opened)] == [200, 200, 429]
    assert _open(_token_client(viewers[1]), opened) == 200  # another user still gets one


def test_the_total_bound_holds_across_users(viewers, opened):
    statuses = [_open(_token_client(user), opened) for user in viewers]
    assert statuses == [200, 200, 200, 429]


def test_a_stream_refused_by_the_total_bound_holds_no_slot_of_its_user(viewers, opened, settings):
    settings.LIZZY_EVENT_STREAMS_TOTAL = 1
    assert _open(_token_client(viewers[0]), opened) == 200
    for _ in range(3):
        assert _open(_token_client(viewers[1]), opened) == 429
    _close(opened.pop())
    assert stream_slots._process_open[0] == 0
    client = _token_client(viewers[1])
    assert [_open(client, opened), _open(client, opened, 1)] == [200, 429]  # total 1: refused by the total again
    settings.LIZZY_EVENT_STREAMS_TOTAL = 3
    assert _open(client, opened) == 200  # its user's two slots were never leaked by the refusals


def test_closing_a_stream_early_gives_its_slots_back(viewers, opened):
    client = _token_client(viewers[0])
    for _ in range(5):
        response = client.get(URL, {"seconds": 300})
        assert response.status_code == 200
        _close(response)  # the client went away: the server closes the response
    assert stream_slots._process_open[0] == 0
    assert [_open(client, opened), _open(client, opened)] == [200, 200]


@pytest.mark.parametrize("seconds", [0, -1, 301, 10**9, "forever"])
def test_a_rejected_stream_request_takes_no_slot(viewers, opened, seconds):
    client = _token_client(viewers[0])
    for _ in range(3):
        assert client.get(URL, {"seconds": seconds}).status_code == 400
    assert stream_slots._process_open[0] == 0
    assert [_open(client, opened), _open(client, opened)] == [200, 200]


def test_head_and_options_take_no_slot_for_long(viewers, opened):
    client = _token_client(viewers[0])
    for _ in range(3):
        _close(client.head(URL, {"seconds": 300}))
        _close(client.options(URL))
    assert stream_slots._process_open[0] == 0
    assert [_open(client, opened), _open(client, opened)] == [200, 200]


def test_a_stream_ends_by_itself_and_then_holds_nothing(viewers):
    client = _token_client(viewers[0])
    response = client.get(URL, {"seconds": 1})
    assert response.status_code == 200
    body = b"".join(response.streaming_content)  # returns: the stream ended after its second
    assert body.startswith(b"retry:")
    assert stream_slots._process_open[0] == 0


def test_the_per_process_bound_holds_whatever_the_users(viewers, opened, settings):
    settings.LIZZY_EVENT_STREAMS_PER_PROCESS = 2
    settings.LIZZY_EVENT_STREAMS_TOTAL = 100
    statuses = [_open(_token_client(user), opened) for user in viewers]
    assert statuses == [200, 200, 429, 429]


def test_no_role_without_the_events_permission_opens_a_stream(db, opened):
    group_less = _token_client(_user("r18-nogroup"))
    client = _token_client(_user("r18-client", group="api_client"))
    staff = _token_client(_user("r18-staff", staff=True))
    assert [_open(c, opened) for c in (group_less, client, staff)] == [403, 403, 403]
    assert stream_slots._process_open[0] == 0


def test_a_viewer_removed_from_its_group_cannot_open_a_stream_with_its_old_token(viewers, opened):
    client = _token_client(viewers[0])
    viewers[0].groups.remove(Group.objects.get(name=VIEWER_GROUP))
    assert _open(client, opened) == 403
