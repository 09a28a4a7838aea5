"""Pub/sub events for every session change, the SSE endpoint, and presence."""

from __future__ import annotations

import json
import threading
import time

from rest_framework.test import APIClient

from lizzy.phone import hash_phone, phone_ref
from lizzy.redis import get_redis, key
from sessions_app.services.events import presence_leave, presence_list, presence_touch
from sessions_app.services.sessions import session_delete, session_new, session_save
from tests.sessions_app.factories import SEED_PHONE

EVENTS_URL = "/api/v1/events/sessions"


def subscribe():
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(key("{prefix}events:sessions"))
    return pubsub


def next_message(pubsub, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            return json.loads(message["data"])
    raise AssertionError("no event received")


def test_every_change_publishes_an_event_without_the_phone(dynamodb, session_redis, use_mode):
    use_mode("cached")
    pubsub = subscribe()
    stored = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    stored.current_node = "PARTS"
    session_save(session=stored, expected_version=1)
    session_delete(phone=SEED_PHONE)
    events = [next_message(pubsub) for _ in range(3)]
    pubsub.close()
    assert [e["type"] for e in events] == ["session.created", "session.updated", "session.deleted"]
    assert events[1]["phoneHash"] == hash_phone(SEED_PHONE)
    assert (events[1]["node"], events[1]["version"]) == ("PARTS", 2)
    assert set(events[0]) == {"type", "phoneHash", "node", "version", "time"}
    assert SEED_PHONE not in json.dumps(events)


def test_events_endpoint_needs_authentication(anonymous_client, session_redis):
    response = anonymous_client.get(EVENTS_URL)
    assert response.status_code == 401


def test_events_endpoint_streams_changes_made_elsewhere(api_client, dynamodb, session_redis, use_mode):
    use_mode("dynamodb_only")

    def change_later():
        time.sleep(0.3)  # lets the stream subscribe first; not a timing assertion
        session_save(session=session_new(phone=SEED_PHONE), expected_version=None)

    writer = threading.Thread(target=change_later)
    writer.start()
    response = api_client.get(EVENTS_URL, {"seconds": 10, "limit": 1}, HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    writer.join()
    assert "event: session.created" in body
    data = json.loads(next(line for line in body.splitlines() if line.startswith("data: "))[6:])
    assert data["phoneHash"] == hash_phone(SEED_PHONE)


def test_events_endpoint_rejects_a_silly_duration(api_client, session_redis):
    response = api_client.get(EVENTS_URL, {"seconds": 100000})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_presence_lists_viewers_and_expires(session_redis, settings):
    settings.LIZZY_PRESENCE_SECONDS = 30
    assert presence_touch(phone=SEED_PHONE, viewer="ana") == ["ana"]
    assert sorted(presence_touch(phone=SEED_PHONE, viewer="ben")) == ["ana", "ben"]
    name = f"{settings.LIZZY_REDIS_PREFIX}presence:{hash_phone(SEED_PHONE)}"
    assert 0 < session_redis.ttl(name) <= 30
    # a viewer whose last refresh is older than 30 s no longer counts
    session_redis.zadd(name, {"ana": time.time() - 1})
    assert presence_list(phone=SEED_PHONE) == ["ben"]
    presence_leave(phone=SEED_PHONE, viewer="ben")
    assert presence_list(phone=SEED_PHONE) == []


def test_presence_api(api_client, anonymous_client, ops_viewer, session_redis):
    url = f"/api/v1/sessions/{SEED_PHONE}/presence"
    staff = APIClient()
    staff.force_authenticate(user=ops_viewer)
    assert anonymous_client.get(url).status_code == 401
    assert staff.post(url).json() == {"viewers": ["ops-viewer"]}
    assert staff.get(url).json() == {"viewers": ["ops-viewer"]}
    # Presence names staff users: an API client with every API permission but no staff flag sees nothing.
    assert api_client.get(url).status_code == 403
    assert api_client.post(url).status_code == 403
    assert staff.delete(url).status_code == 204
    assert staff.get(url).json() == {"viewers": []}
    assert staff.get("/api/v1/sessions/not-a-phone/presence").status_code == 400


def test_presence_api_by_ref(ops_viewer, session_redis):
    """Presence names a session by its ref, like the rest of the sessions API; a phone in the path is deprecated."""
    staff = APIClient()
    staff.force_authenticate(user=ops_viewer)
    url = f"/api/v1/sessions/{phone_ref(SEED_PHONE)}/presence"
    assert staff.post(url).json() == {"viewers": ["ops-viewer"]}
    assert "Deprecation" not in staff.get(url)
    old = staff.get(f"/api/v1/sessions/{SEED_PHONE}/presence")
    assert old.json() == {"viewers": ["ops-viewer"]}
    assert old["Deprecation"].startswith("@")
    assert staff.delete(url).status_code == 204
    assert staff.get(url).json() == {"viewers": []}
