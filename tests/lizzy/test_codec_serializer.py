"""The bulk client's serializer sends, byte for byte, the body botocore's own serializer makes.

``_CodecSerializer`` writes BatchWriteItem's body with one ``json.dumps`` of the codec's wire form; botocore's
``JSONSerializer`` walks every attribute. botocore is the second implementation: for every item the codec
accepts (strings, 38-digit numbers, sets, binaries at any depth, empty containers), and for deletes, the two
bodies must be the same bytes, and the request's other parts (method, path, headers) the same.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from botocore.serialize import JSONSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from lizzy.dynamodb.client import _base64_blob, _CodecSerializer, get_client
from lizzy.dynamodb.codec import serialize_checked
from lizzy.dynamodb.errors import CodecError
from tests.lizzy.test_dynamodb_codec import wire_values


@pytest.fixture(scope="module")
def batch_write_model():
    return get_client("bulk").meta.service_model.operation_model("BatchWriteItem")


def _wire(item):
    try:
        return serialize_checked(item)[0]
    except CodecError:
        return None  # a value DynamoDB cannot hold: the codec refuses it before any serializer sees it


def _assert_same_request(params, model):
    ours = _CodecSerializer().serialize_to_request(copy.deepcopy(params), model)
    botocore = JSONSerializer().serialize_to_request(copy.deepcopy(params), model)
    assert ours["body"] == botocore["body"]
    assert {k: v for k, v in ours.items() if k != "body"} == {k: v for k, v in botocore.items() if k != "body"}


@settings(max_examples=80, deadline=None)
@given(
    items=st.lists(st.dictionaries(st.text(min_size=1, max_size=10), wire_values, min_size=1, max_size=6), max_size=25),
    with_deletes=st.booleans(),
)
def test_batch_write_bodies_are_botocore_s_bytes(items, with_deletes, batch_write_model):
    requests = []
    for number, item in enumerate(items):
        wire = _wire({**item, "PK": f"THING#{number}"})
        if wire is None:
            continue
        requests.append({"PutRequest": {"Item": wire}})
        if with_deletes:
            requests.append({"DeleteRequest": {"Key": {"PK": wire["PK"]}}})
    params = {"RequestItems": {"Things-é": requests}, "ReturnConsumedCapacity": "TOTAL"}
    _assert_same_request(params, batch_write_model)


def test_binary_at_every_depth_is_base64_as_botocore_sends_it(batch_write_model):
    wire = _wire({"PK": "a", "b": b"\x00\xff", "bs": {b"x", b"\x01"}, "m": {"l": [b"ab", {"deep": b""}]}})
    _assert_same_request({"RequestItems": {"t": [{"PutRequest": {"Item": wire}}]}}, batch_write_model)


def test_a_value_the_codec_never_makes_is_refused_not_sent_as_text():
    # a float or a Decimal in the wire form would be a bug upstream: botocore would refuse it too
    with pytest.raises(TypeError, match="Decimal is not an AttributeValue member"):
        _base64_blob(Decimal("1.5"))
