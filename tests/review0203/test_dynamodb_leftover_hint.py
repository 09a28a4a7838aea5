"""Review of 6c3101f: the DynamoDB store remembers, per thread, the expired leftover its last read found, and a
create is one PutItem conditional on exactly it. Another writer's live session landing between the read and the
create must refuse it (409, retried by the caller), never make a second lifetime or move the version back."""

from __future__ import annotations

import threading

from django.utils import timezone

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.tables import SESSIONS
from sessions_app.selectors import session_get
from sessions_app.services.sessions import SessionConflict, session_new
from sessions_app.services.store.dynamodb_only import DynamoDBSessionStore
from tests.sessions_app.factories import SEED_PHONE


def expired_leftover(store: DynamoDBSessionStore) -> int:
    """A session of two turns whose ttl passed in place (DynamoDB keeps the item for days): its version."""
    created = store.save(session_new(phone=SEED_PHONE), expected_version=None)
    store.save(created, expected_version=created.version)
    item = dynamodb_get_item(table=SESSIONS.name, key={"phone": SEED_PHONE}, consistent=True)
    item["ttl"] = int(timezone.now().timestamp()) - 1
    dynamodb_put_item(table=SESSIONS.name, item=item)
    return int(item["version"])


def test_a_live_session_another_writer_created_after_the_read_refuses_the_hinted_create(dynamodb):
    # given a thread that read the phone's expired leftover (the hint)
    store = DynamoDBSessionStore()
    left = expired_leftover(store)
    assert store.load(SEED_PHONE) is None
    # and another writer (its own store: another process) starting the phone's new lifetime meanwhile
    other = DynamoDBSessionStore().save(session_new(phone=SEED_PHONE, customer_id="OTHER"), expected_version=None)
    assert other.version == left + 1
    # when this thread creates too
    mine = session_new(phone=SEED_PHONE, customer_id="MINE")
    try:
        store.save(mine, expected_version=None)
        refused = False
    except SessionConflict:
        refused = True
    # then it is refused and the other lifetime stands, at its version
    assert refused
    found = session_get(phone=SEED_PHONE)
    assert (found.customer_id, found.version) == ("OTHER", left + 1)


def test_two_threads_sharing_the_store_that_read_the_same_leftover_create_one_lifetime(dynamodb):
    # given one store shared by two threads, each of which read the expired leftover
    store = DynamoDBSessionStore()
    left = expired_leftover(store)
    read, results = threading.Barrier(2), {}

    def returning(name: str) -> None:
        assert store.load(SEED_PHONE) is None
        read.wait(10)
        try:
            results[name] = store.save(session_new(phone=SEED_PHONE, customer_id=name), expected_version=None).version
        except SessionConflict:
            results[name] = "conflict"

    threads = [threading.Thread(target=returning, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    # then exactly one created the new lifetime, one above the leftover; the other was refused
    assert sorted(map(str, results.values())) == sorted([str(left + 1), "conflict"])
    winner = next(name for name, value in results.items() if value != "conflict")
    assert session_get(phone=SEED_PHONE).customer_id == winner
