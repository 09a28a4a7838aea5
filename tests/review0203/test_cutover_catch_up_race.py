"""Review of the ``parallel -> cutover`` catch-up (``dynamodb_catch_up_from_redis``), which the one-process soak's
seed 115 at 400 steps hits on the merged tree (f9c3f74; 2 of 6 runs "resurrected x1 in cutover", 0 of 8 on each
branch alone: the new call counts move its schedule): a cutover end landing while the catch-up looks at a phone
(a process that already follows cutover) came back, because the catch-up wrote Redis's live copy over DynamoDB's
leftover, which its condition (``ttl <= now OR version < :v``) lets through whatever was read."""

from __future__ import annotations

import pytest

from sessions_app.services.sessions import session_delete
from sessions_app.services.store.parallel import dynamodb_catch_up_from_redis
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review0203.test_cutover_end_floor import turn
from tests.sessions_app.factories import SEED_PHONE
from tests.sessions_app.store.test_store_of_record_revalidate import log_of, refuse_dynamodb_writes


@pytest.mark.parametrize("during", ["GetItem", "PutItem"])
def test_a_cutover_delete_landing_during_the_catch_up_stays_deleted(dynamodb, session_redis, use_mode, during):
    # given a session in parallel; for the PutItem case Redis is one turn ahead (its mirror failed), so the
    # catch-up has a copy to write
    use_mode("parallel")
    assert turn("a") == 1
    if during == "PutItem":
        with fault_injection(refuse_dynamodb_writes):
            assert turn("b") == 2
    use_mode("cutover")
    ended: list[bool] = []
    started: list[str] = []

    def delete_meanwhile(operation, params, send):
        if operation == during and not started:
            started.append(operation)
            ended.append(session_delete(phone=SEED_PHONE))  # a process already in cutover ends the session
        return send(params)

    # when the catch-up once every process follows cutover looks at the phone while that delete lands
    with fault_injection(delete_meanwhile):
        dynamodb_catch_up_from_redis()
    assert ended == [True]
    # then the acknowledged delete holds
    assert log_of(SEED_PHONE) is None
