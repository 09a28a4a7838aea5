"""Review of 60a09cb: session_tombstone.lua's floor rule (a live Redis copy above DynamoDB's leftover stays) is
shared by cutover and cached, where DynamoDB is the store of record and Redis's copy above the leftover may be
the very session the end ended: turns a process still in parallel acknowledged from Redis while their DynamoDB
mirror failed (the window the second ``parallel -> cutover`` catch-up is for)."""

from __future__ import annotations

import pytest

from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete, session_new, session_save
from sessions_app.services.store_modes import store_of_record_revalidate
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.sessions_app.factories import SEED_PHONE
from tests.sessions_app.store.test_store_of_record_revalidate import log_of, refuse_dynamodb_writes


def turn(entry: str) -> int:
    current = session_get(phone=SEED_PHONE)
    session = current or session_new(phone=SEED_PHONE)
    session.session_data = {"log": [*(current.session_data["log"] if current else []), entry]}
    return session_save(session=session, expected_version=current.version if current else None).version


@pytest.mark.parametrize("then", ["after_catch_up", "rollback_to_parallel"])
def test_a_cutover_delete_ends_the_turns_a_parallel_process_acknowledged_in_the_mode_window(
    dynamodb, session_redis, use_mode, then
):
    # given a session in parallel (version 1 in both stores), and the change to cutover, first catch-up done
    use_mode("parallel")
    assert turn("a") == 1
    store_of_record_revalidate(current="parallel", target="cutover", force=False, phase="before")
    # and a process still in parallel (its mode cache) acknowledging two turns from Redis while DynamoDB refuses
    # their mirror writes: Redis holds version 3, DynamoDB version 1
    with fault_injection(refuse_dynamodb_writes):
        assert turn("b") == 2
        assert turn("c") == 3
    # when a cutover process ends the session (whatever version is live): acknowledged
    use_mode("cutover")
    assert session_delete(phone=SEED_PHONE)
    assert log_of(SEED_PHONE) is None
    # and the change completes (the catch-up once every process follows cutover), or the store rolls back
    if then == "after_catch_up":
        store_of_record_revalidate(current="parallel", target="cutover", force=False, phase="after")
    else:
        store_of_record_revalidate(current="cutover", target="parallel", force=False, phase="before")
        use_mode("parallel")
    # then the acknowledged delete holds: the session it ended does not come back
    assert log_of(SEED_PHONE) is None
