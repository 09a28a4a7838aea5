"""Review of 3d06ac2 and 5968bb2 (issue 13), If-Match given: a process in ``cached`` ends a session whose
write-behind lineage (a process in ``cached_write_behind``, as while the processes follow a mode change) is still
unflushed. Every read there serves that lineage; an end conditional on an older version is a conflict (412), and
the acknowledged turns it did not see stay."""

from __future__ import annotations

import pytest

from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete
from sessions_app.services.store.base import SessionConflict
from sessions_app.services.store.factory import store_for_mode
from sessions_app.services.store.write_behind import sessions_flush
from tests.review0203.test_cached_end_leaves_a_flushable_base import assert_served_everywhere, turn
from tests.sessions_app.factories import SEED_PHONE


@pytest.mark.parametrize("kind", ["delete", "expire"])
def test_a_cached_end_if_match_an_older_version_keeps_the_unflushed_turns(dynamodb, session_redis, use_mode, kind):
    # given a session in DynamoDB at version 1 and two unflushed write-behind turns on it (version 3)
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    assert turn("b") == 2
    assert turn("c") == 3
    use_mode("cached")
    assert session_get(phone=SEED_PHONE).version == 3
    # when a process in cached ends it If-Match version 1 (a stale copy an operator saw)
    store = store_for_mode("cached")
    with pytest.raises(SessionConflict):
        store.delete(SEED_PHONE, expected_version=1) if kind == "delete" else store.expire(
            SEED_PHONE, expected_version=1
        )
    # then the turns it did not see stay, before and after a flush
    assert_served_everywhere(3, ["a", "b", "c"], use_mode)
    sessions_flush()
    assert_served_everywhere(3, ["a", "b", "c"], use_mode)


def test_a_cached_end_if_match_the_version_every_read_serves_is_acknowledged(dynamodb, session_redis, use_mode):
    use_mode("cached")
    assert turn("a") == 1
    use_mode("cached_write_behind")
    assert turn("b") == 2
    use_mode("cached")
    assert session_get(phone=SEED_PHONE).version == 2
    ended = session_delete(phone=SEED_PHONE, expected_version=2)
    sessions_flush()
    served = {mode: (use_mode(mode), session_get(phone=SEED_PHONE))[1] for mode in ("cached_write_behind", "cached")}
    assert (ended, served) == (True, {"cached_write_behind": None, "cached": None})
