"""migrate_sessions_from_redis: SCAN copy with TTL preservation, newer sessions kept, resume, --verify."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import CommandError, call_command

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item
from lizzy.tables import SESSIONS
from sessions_app.services import legacy_copy
from sessions_app.services.legacy_copy import sessions_migrate_from_redis, sessions_verify_copy

PHONES = [f"+1206555{n:04d}" for n in range(30)]


def legacy_document(phone, version=3, node="MAIN_MENU"):
    return {
        "phone": phone,
        "customerId": "CUST123",
        "currentNode": node,
        "cachedData": {"transactions": {"items": [{"amount": 42.5}]}},
        "sessionData": {"partsOrderRequested": False},
        "lastActivity": "2026-11-21T10:40:00Z",
        "version": version,
    }


@pytest.fixture
def legacy_sessions(session_redis, settings, dynamodb):
    """30 legacy keys with different remaining lifetimes."""
    for index, phone in enumerate(PHONES):
        name = f"{settings.LIZZY_REDIS_PREFIX}session:{phone}"
        session_redis.set(name, json.dumps(legacy_document(phone)), px=(100 + index * 10) * 1000)
    session_redis.set(f"{settings.LIZZY_REDIS_PREFIX}other:thing", "not a session")
    return session_redis


def durable(phone):
    return dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)


def test_copy_preserves_documents_and_remaining_ttl(legacy_sessions):
    before = time.time()
    result = sessions_migrate_from_redis(scan_count=7)
    assert (result.copied, result.scanned) == (30, 30)
    item = durable(PHONES[5])
    assert item["currentNode"] == "MAIN_MENU"
    assert item["cachedData"]["transactions"]["items"][0]["amount"] == pytest.approx(42.5)
    assert before + 150 - 2 <= item["ttl"] <= time.time() + 150 + 1
    assert sessions_verify_copy().ok


def test_copy_never_overwrites_a_session_updated_during_the_copy(legacy_sessions, monkeypatch):
    real = legacy_copy.redis_values_with_pttl

    def snapshot_then_concurrent_update(*, url, keys):
        rows = real(url=url, keys=keys)  # the copy holds version 3 of every session now...
        if any(PHONES[0] in name for name in keys):  # ...and the app writes version 4 into DynamoDB
            newer = {**legacy_document(PHONES[0], version=4, node="NEWER_IN_DYNAMODB"), "ttl": int(time.time()) + 900}
            dynamodb_put_item(table=SESSIONS.name, item=newer)
        return rows

    monkeypatch.setattr(legacy_copy, "redis_values_with_pttl", snapshot_then_concurrent_update)
    result = sessions_migrate_from_redis()
    assert (result.copied, result.skipped_newer) == (29, 1)
    assert durable(PHONES[0])["currentNode"] == "NEWER_IN_DYNAMODB"


def test_keys_that_expire_during_the_copy_are_skipped_and_counted(legacy_sessions, monkeypatch):
    real = legacy_copy.redis_values_with_pttl

    def first_key_expires(*, url, keys):
        rows = real(url=url, keys=keys)
        return [(None, -2) if PHONES[3] in name else row for name, row in zip(keys, rows, strict=True)]

    monkeypatch.setattr(legacy_copy, "redis_values_with_pttl", first_key_expires)
    result = sessions_migrate_from_redis()
    assert (result.copied, result.skipped_expired) == (29, 1)
    assert durable(PHONES[3]) is None


def test_an_interrupted_copy_resumes_from_its_cursor(legacy_sessions, monkeypatch):
    real = legacy_copy._copy_page
    pages = []

    def fail_on_second_page(url, keys, result):
        pages.append(len(keys))
        if len(pages) == 2:
            raise RuntimeError("worker killed")
        real(url, keys, result)

    monkeypatch.setattr(legacy_copy, "_copy_page", fail_on_second_page)
    with pytest.raises(RuntimeError):
        sessions_migrate_from_redis(scan_count=5)
    monkeypatch.setattr(legacy_copy, "_copy_page", real)
    resumed = sessions_migrate_from_redis(scan_count=5)
    assert resumed.resumed_from != 0
    assert resumed.scanned < 30  # the first page was not scanned again
    assert all(durable(phone) is not None for phone in PHONES)


def test_verify_reports_missing_different_and_ttl_mismatch(legacy_sessions):
    sessions_migrate_from_redis()
    from lizzy.dynamodb import dynamodb_delete_item

    dynamodb_delete_item(table=SESSIONS.name, key={"phone": PHONES[0]})
    dynamodb_put_item(table=SESSIONS.name, item={**durable(PHONES[1]), "currentNode": "CHANGED"})
    dynamodb_put_item(table=SESSIONS.name, item={**durable(PHONES[2]), "ttl": int(time.time()) + 5000})
    result = sessions_verify_copy(ttl_tolerance_seconds=5)
    assert (result.missing, result.different, result.ttl_mismatch) == (1, 1, 1)
    assert PHONES[0] not in json.dumps(result.samples)


def test_command_copies_then_verifies(legacy_sessions, capsys):
    call_command("migrate_sessions_from_redis", "--no-progress")
    assert "Copied 30 session(s)" in capsys.readouterr().out
    call_command("migrate_sessions_from_redis", "--verify")
    assert "0 missing, 0 different" in capsys.readouterr().out
    dynamodb_put_item(table=SESSIONS.name, item={**durable(PHONES[1]), "currentNode": "CHANGED"})
    with pytest.raises(CommandError, match="differs"):
        call_command("migrate_sessions_from_redis", "--verify")


def test_command_reads_another_redis_url(own_redis, dynamodb, settings, capsys):
    # the legacy Redis is another server than the session Redis
    own_redis.client().set("lizzy:session:+12065550100", json.dumps(legacy_document("+12065550100")), ex=600)
    call_command("migrate_sessions_from_redis", "--redis-url", own_redis.url, "--no-progress")
    assert "Copied 1 session(s)" in capsys.readouterr().out
    assert durable("+12065550100")["version"] == 3
