"""Review of 60a09cb's shared tombstone floor rule in ``cached``: DynamoDB, the store of record, ends whatever is
live; a Redis copy above its leftover may be turns a process still in ``cached_write_behind`` (its mode cache)
acknowledged and has not flushed. The end must still end them: the flush must not carry the session back."""

from __future__ import annotations

from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete, session_new, session_save
from sessions_app.services.store.write_behind import sessions_flush
from tests.sessions_app.factories import SEED_PHONE


def turn(entry: str) -> int:
    current = session_get(phone=SEED_PHONE)
    session = current or session_new(phone=SEED_PHONE)
    session.session_data = {"log": [*(current.session_data["log"] if current else []), entry]}
    return session_save(session=session, expected_version=current.version if current else None).version


def test_a_cached_delete_ends_the_unflushed_turns_of_a_process_still_in_write_behind(dynamodb, session_redis, use_mode):
    # given a session in DynamoDB at version 1, and a process still in cached_write_behind acknowledging two
    # turns into Redis, not flushed yet
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    assert turn("b") == 2
    assert turn("c") == 3
    # when a process in cached ends the session (whatever version is live): acknowledged
    use_mode("cached")
    assert session_delete(phone=SEED_PHONE)
    # then no read serves the ended session, before the flush
    assert session_get(phone=SEED_PHONE) is None
    use_mode("cached_write_behind")
    assert session_get(phone=SEED_PHONE) is None
    # and the flusher runs
    sessions_flush()
    # then it stays ended, in either mode
    use_mode("cached")
    assert session_get(phone=SEED_PHONE) is None
    use_mode("cached_write_behind")
    assert session_get(phone=SEED_PHONE) is None
