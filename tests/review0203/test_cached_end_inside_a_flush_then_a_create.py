"""Review of 3d06ac2 and 6327f04 (issue 13): a cached end landing between a flush's write of a write-behind lineage
and that flush's bookkeeping moves the tombstone's base up to DynamoDB's leftover. A create on that tombstone, in
write-behind, before the bookkeeping inherits that base and a new write counter; ``dirty_flushed.lua`` then sets the
base back to the version the flush wrote (below the leftover) and keeps the mark, and the next flush, finding
DynamoDB at the leftover, drops the acknowledged create as a fork. Nothing is away; no loss window covers it."""

from __future__ import annotations

from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete
from sessions_app.services.store import write_behind
from sessions_app.services.store.write_behind import sessions_flush
from tests.review0203.test_cached_end_leaves_a_flushable_base import assert_served_everywhere, turn
from tests.sessions_app.factories import SEED_PHONE


def test_a_create_after_a_cached_end_inside_a_flush_survives_the_flush_bookkeeping(
    dynamodb, session_redis, use_mode, monkeypatch
):
    # given a session in DynamoDB at version 1 and an unflushed write-behind turn on it
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    assert turn("b") == 2
    flushed = write_behind.redis_dirty_flushed
    created = []

    def end_and_create_then_flushed(**kwargs):
        if not created:  # between the flush's write and its bookkeeping: a cached end, then the customer texts
            use_mode("cached")
            assert session_delete(phone=SEED_PHONE) is True
            use_mode("cached_write_behind")
            assert session_get(phone=SEED_PHONE) is None
            created.append(turn("new"))
        return flushed(**kwargs)

    monkeypatch.setattr(write_behind, "redis_dirty_flushed", end_and_create_then_flushed)
    sessions_flush()
    monkeypatch.undo()
    assert created
    # when the flusher runs again, then the acknowledged create is what every read serves
    sessions_flush()
    assert_served_everywhere(created[0], ["new"], use_mode)
