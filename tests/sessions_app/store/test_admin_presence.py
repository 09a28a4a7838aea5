"""Presence on the live session page: who else is looking, kept fresh by the page's own heartbeat."""

from __future__ import annotations

import pytest

from lizzy.phone import phone_ref
from sessions_app.services.events import presence_list, presence_touch
from sessions_app.services.sessions import session_new, session_save
from tests.sessions_app.factories import SEED_PHONE

pytestmark = pytest.mark.django_db
DETAIL_URL = f"/admin/ops/sessions/{phone_ref(SEED_PHONE)}/"
PRESENCE_URL = DETAIL_URL + "presence/"


@pytest.fixture
def live_session(dynamodb, session_redis):
    return session_save(session=session_new(phone=SEED_PHONE), expected_version=None)


def test_detail_page_names_the_other_viewers_and_marks_me_present(live_session, ops_admin_client):
    presence_touch(phone=SEED_PHONE, viewer="colleague")

    html = ops_admin_client.get(DETAIL_URL).content.decode()

    assert "Also viewing: colleague</div>" in html
    assert f'data-url="{PRESENCE_URL}"' in html
    assert 'data-refresh-ms="10000"' in html
    assert sorted(presence_list(phone=SEED_PHONE)) == ["colleague", "ops-admin"]


def test_heartbeat_returns_the_others_and_leave_removes_me(live_session, ops_admin_client, ops_viewer_client):
    ops_viewer_client.get(DETAIL_URL)

    beat = ops_admin_client.post(PRESENCE_URL)

    assert beat.json() == {"viewers": ["ops-viewer"], "available": True}
    assert ops_viewer_client.post(PRESENCE_URL, {"leave": "1"}).json()["viewers"] == []
    assert presence_list(phone=SEED_PHONE) == ["ops-admin"]


def test_heartbeat_is_post_only_and_checks_the_reference(live_session, ops_admin_client, client):
    assert ops_admin_client.get(PRESENCE_URL).status_code == 405
    for bad_ref in ("not-a-ref", SEED_PHONE, phone_ref(SEED_PHONE)[:-2] + "AA"):
        bad = ops_admin_client.post(f"/admin/ops/sessions/{bad_ref}/presence/")
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_phone_ref"
    assert client.post(PRESENCE_URL).status_code == 302  # signed out: to the login page


def test_without_redis_presence_says_it_is_unavailable(dynamodb, settings, ops_admin_client):
    settings.REDIS_URL = None
    settings.LIZZY_SESSION_REDIS_URL = None
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)

    html = ops_admin_client.get(DETAIL_URL).content.decode()

    assert "Presence unavailable (needs Redis)." in html
    assert ops_admin_client.post(PRESENCE_URL).json() == {"viewers": None, "available": False}
