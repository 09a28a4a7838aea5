"""Review of 4cbfc56 (issue 13, versions across lifetimes): a write-behind create over a tombstone keeps the
right flush base, and the bulk client profile (the engine's BatchWriteItem) sends what botocore's own serializer would.

Each test checks an independent expectation (the version each step must stamp, no fork dropped, DynamoDB's
final item, the request body botocore builds) and failed while the behaviour it names was wrong.
"""

from __future__ import annotations

import copy

import pytest
from botocore.serialize import JSONSerializer

from lizzy.dynamodb import get_client
from lizzy.dynamodb.client import _CodecSerializer
from lizzy.dynamodb.codec import serialize_checked
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_delete, session_new, session_save
from sessions_app.services.store.write_behind import sessions_flush
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.sessions_app.store.test_issue13_scenarios import (
    PHONE,
    Nested,
    durable,
    leave_expired_leftover,
    live_durable,
    turn,
)


@pytest.fixture
def stores(live_dynamodb, session_redis, use_mode):
    return use_mode


def test_the_bulk_profile_sends_the_body_botocore_would_for_every_type_the_codec_emits():
    item = {
        "phone": "+1",
        "version": 3,
        "fraction": 1.5,
        "negativeZero": -0.0,
        "big": 10**30,
        "text": "é😀",
        "empty": "",
        "emptyMap": {},
        "emptyList": [],
        "nothing": None,
        "flag": True,
        "nested": {"a": [1, {"b": [2.25, None, "x"]}], "c": {"d": False}},
        "binary": b"\x00\xff",
        "nestedBinary": {"x": [b"ab"]},
        "strings": {"a", "b"},
        "numbers": {1, 2.5},
        "binaries": {b"a"},
    }
    wire, _size = serialize_checked(item)
    model = get_client().meta.service_model.operation_model("PutItem")
    params = {"TableName": "t", "Item": wire}
    botocore_body = JSONSerializer().serialize_to_request(copy.deepcopy(params), model)["body"]
    assert _CodecSerializer().serialize_to_request(copy.deepcopy(params), model)["body"] == botocore_body


def test_a_create_over_an_unflushed_delete_is_flushed_over_the_lineage_s_base(stores):
    stores("cached_write_behind")
    for node in "ABC":
        turn(node)
    sessions_flush()
    assert durable()["version"] == 3
    turn("D")  # version 4, dirty
    assert session_delete(phone=PHONE, expected_version=4)  # a dirty tombstone at version 5, base still 3
    assert turn("NEW").version == 6
    result = sessions_flush()
    assert (result.written, result.stale_skipped) == (1, 0)  # written over version 3, not dropped as a fork
    assert (live_durable()["currentNode"], live_durable()["version"]) == ("NEW", 6)
    assert session_get(phone=PHONE).current_node == "NEW"


def test_a_create_over_a_flushed_delete_is_flushed_over_its_leftover(stores):
    stores("cached_write_behind")
    turn("A")
    sessions_flush()
    assert session_delete(phone=PHONE, expected_version=1)
    sessions_flush()  # DynamoDB's leftover and the clean tombstone: version 2
    assert turn("NEW").version == 3
    result = sessions_flush()
    assert (result.written, result.stale_skipped) == (1, 0)
    assert live_durable()["currentNode"] == "NEW"


@pytest.mark.parametrize("flushed_meanwhile", [False, True])
def test_a_create_racing_a_create_and_delete_after_its_getitem_is_restamped_and_flushed(stores, flushed_meanwhile):
    stores("cached_write_behind")
    leave_expired_leftover(PHONE, 9)

    def another_process():
        assert session_save(session=session_new(phone=PHONE), expected_version=None).version == 10
        assert session_delete(phone=PHONE, expected_version=10)  # tombstone at 11
        if flushed_meanwhile:
            sessions_flush()

    mine = session_new(phone=PHONE)
    mine.current_node = "MINE"
    # between the create's GetItem (leftover 9: stamped 10) and its CAS, which refuses 10 over the tombstone
    with fault_injection(Nested("GetItem", another_process, after=True)):
        assert session_save(session=mine, expected_version=None).version == 12
    result = sessions_flush()
    assert result.stale_skipped == 0
    assert (live_durable()["currentNode"], live_durable()["version"]) == ("MINE", 12)
    assert session_get(phone=PHONE).current_node == "MINE"
