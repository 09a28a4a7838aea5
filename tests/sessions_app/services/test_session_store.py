import datetime as dt
import time

import pytest
from django.utils import timezone

from lizzy.dynamodb import ItemTooLarge, dynamodb_delete_item, dynamodb_get_item, dynamodb_put_item
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get, session_list
from sessions_app.services.sessions import (
    Session,
    SessionConflict,
    session_delete,
    session_new,
    session_save,
)
from tests.fixtures.dynamodb_hooks import record_calls
from tests.sessions_app.factories import SEED_PHONE


def stored_item(phone=SEED_PHONE):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def test_create_read_update_delete(dynamodb):
    created = session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    assert created.version == 1
    loaded = session_get(phone=SEED_PHONE)
    assert loaded.customer_id == "CUST123"
    loaded.current_node = "SELECT_EQUIPMENT"
    updated = session_save(session=loaded, expected_version=loaded.version)
    assert updated.version == 2
    assert session_get(phone=SEED_PHONE).current_node == "SELECT_EQUIPMENT"
    assert session_delete(phone=SEED_PHONE) is True
    assert session_get(phone=SEED_PHONE) is None
    assert session_delete(phone=SEED_PHONE) is False


def test_item_has_exactly_the_seed_attributes(dynamodb):
    session = session_new(phone=SEED_PHONE, customer_id="CUST123")
    session.cached_data = {"customerProfile": {}, "profileCacheTime": "2025-11-11T10:30:00Z"}
    session_save(session=session, expected_version=None)
    assert set(stored_item()) == {
        "phone",
        "customerId",
        "currentNode",
        "cachedData",
        "sessionData",
        "lastActivity",
        "ttl",
        "version",
    }


def test_every_save_refreshes_last_activity_and_ttl(dynamodb, settings):
    settings.LIZZY_SESSION_TTL_SECONDS = 900
    before = int(time.time())
    first = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    assert before + 900 <= first.ttl <= int(time.time()) + 900
    assert stored_item()["ttl"] == first.ttl
    last_activity = dt.datetime.fromisoformat(stored_item()["lastActivity"].replace("Z", "+00:00"))
    assert first.ttl == int(last_activity.timestamp()) + 900

    # Move the stored clock back 10 minutes, then save again: both attributes move forward.
    old = stored_item()
    old.update({"ttl": old["ttl"] - 600, "lastActivity": "2025-11-11T10:40:00Z"})
    dynamodb_put_item(table=SESSIONS.name, item=old)
    second = session_save(session=session_get(phone=SEED_PHONE), expected_version=first.version)
    assert second.ttl >= first.ttl
    assert stored_item()["lastActivity"] != "2025-11-11T10:40:00Z"


def expire_in_place(phone=SEED_PHONE):
    """What DynamoDB really does: the item stays until TTL deletion runs, days later."""
    item = stored_item(phone)
    item["ttl"] = int(timezone.now().timestamp()) - 1
    dynamodb_put_item(table=SESSIONS.name, item=item)


def test_expired_item_still_in_the_table_is_invisible_to_every_read_path(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST123"), expected_version=None)
    expire_in_place()
    assert stored_item() is not None  # still physically there
    assert session_get(phone=SEED_PHONE) is None
    assert session_list()[0] == []
    assert session_list(node="MAIN_MENU")[0] == []
    assert session_delete(phone=SEED_PHONE) is False


def test_an_expired_item_can_be_replaced_by_a_new_session(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    expire_in_place()
    fresh = session_save(session=session_new(phone=SEED_PHONE, customer_id="CUST9"), expected_version=None)
    assert fresh.version == 2  # one above the leftover: versions are monotonic across lifetimes
    assert session_get(phone=SEED_PHONE).customer_id == "CUST9"


def test_a_leftover_read_before_the_create_saves_the_refused_write(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    expire_in_place()
    assert session_get(phone=SEED_PHONE) is None  # the read a returning customer's turn makes
    with record_calls() as calls:
        fresh = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    assert [name for name, _ in calls] == ["PutItem"]
    assert fresh.version == 2


def test_a_leftover_swept_after_it_was_read_still_lets_the_create_through(dynamodb):
    """The read's leftover is a hint, not a condition: TTL deleting it meanwhile leaves an empty slot."""
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    expire_in_place()
    assert session_get(phone=SEED_PHONE) is None
    dynamodb_delete_item(table=SESSIONS.name, key={"phone": SEED_PHONE})  # TTL's sweep, days later
    fresh = session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    assert fresh.version == 1
    assert session_get(phone=SEED_PHONE).version == 1


def test_a_hint_about_another_phone_is_not_used(dynamodb):
    other = "+12065550199"
    session_save(session=session_new(phone=other), expected_version=None)
    expire_in_place(other)
    assert session_get(phone=other) is None
    assert session_save(session=session_new(phone=SEED_PHONE), expected_version=None).version == 1


def test_stale_version_raises_conflict_and_writes_nothing(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    first = session_get(phone=SEED_PHONE)
    second = session_get(phone=SEED_PHONE)
    first.current_node = "A"
    session_save(session=first, expected_version=first.version)
    second.current_node = "B"
    with pytest.raises(SessionConflict):
        session_save(session=second, expected_version=second.version)
    assert session_get(phone=SEED_PHONE).current_node == "A"


def test_creating_over_a_live_session_is_a_conflict(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with pytest.raises(SessionConflict):
        session_save(session=session_new(phone=SEED_PHONE), expected_version=None)


def test_oversize_item_is_refused_before_any_write(dynamodb):
    session = session_new(phone=SEED_PHONE)
    session.cached_data = {"customerProfile": {"notes": "x" * 410_000}}
    with record_calls() as calls, pytest.raises(ItemTooLarge):
        session_save(session=session, expected_version=None)
    assert calls == []
    assert stored_item() is None


def test_a_turn_costs_one_get_and_one_conditional_put(dynamodb):
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    with record_calls() as calls:
        session = session_get(phone=SEED_PHONE)
        session.current_node = "SELECT_EQUIPMENT"
        session_save(session=session, expected_version=session.version)
    assert [op for op, _table in calls] == ["GetItem", "PutItem"]


def test_listing_pages_through_every_live_session_once(dynamodb):
    phones = [f"+1206555{index:04d}" for index in range(1, 13)]
    for phone in phones:
        session = session_new(phone=phone)
        session.current_node = "MAIN_MENU" if int(phone[-2:]) % 2 else "PARTS"
        session_save(session=session, expected_version=None)
    seen, cursor = [], None
    while True:
        page, cursor = session_list(node="MAIN_MENU", limit=2, cursor=cursor)
        assert len(page) <= 2
        seen += [s.phone for s in page]
        if not cursor:
            break
    assert sorted(seen) == sorted(p for p in phones if int(p[-2:]) % 2)


def test_round_trip_of_document_shape():
    document = {
        "phone": SEED_PHONE,
        "customerId": "CUST123",
        "currentNode": "MAIN_MENU",
        "cachedData": {},
        "sessionData": {},
        "lastActivity": "2025-11-11T10:40:00Z",
        "ttl": 1731325500,
        "version": 3,
        "turns": [],
    }
    assert Session.from_document(document).to_document() == document
