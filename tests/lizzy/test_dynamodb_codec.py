import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lizzy.dynamodb import (
    ERR_EMPTY_SET,
    ERR_NAN,
    ITEM_MAX_BYTES,
    CodecError,
    ItemTooLarge,
    check_item_size,
    deserialize_item,
    deserialize_value,
    item_size,
    serialize_checked,
    serialize_item,
    serialize_value,
)


def roundtrip(item):
    return deserialize_item(serialize_item(item))


def test_floats_become_exact_decimals_not_binary_expansions():
    assert serialize_item({"price": 0.1})["price"] == {"N": "0.1"}
    assert roundtrip({"price": 0.1}) == {"price": Decimal("0.1")}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("Infinity")])
def test_nan_and_infinity_are_refused_with_the_attribute_named(value):
    with pytest.raises(CodecError) as excinfo:
        serialize_item({"data": {"score": value}})
    assert excinfo.value.message == ERR_NAN.format(path="data.score")


def test_datetimes_are_iso_8601_utc_strings():
    aware = dt.datetime(2025, 11, 11, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert roundtrip({"at": aware}) == {"at": "2025-11-11T10:30:00Z"}
    assert roundtrip({"at": dt.datetime(2025, 11, 11, 10, 30, 0, 5)}) == {"at": "2025-11-11T10:30:00.000005Z"}


def test_bytes_sets_maps_and_lists_round_trip_exactly():
    item = {
        "blob": b"\x00\xffbinary",
        "tags": {"a", "b"},
        "scores": {1, 2, 3},
        "nested": {"list": [1, "two", None, True, {"deep": [Decimal("1.50")]}], "empty": ""},
        "big": 12345678901234567890123456789012345678,
    }
    assert roundtrip(item) == item


def test_integral_numbers_come_back_as_int_and_fractions_as_decimal():
    back = roundtrip({"n": 5, "d": Decimal("5.0"), "e": Decimal("1E+2")})
    assert back == {"n": 5, "d": Decimal("5.0"), "e": Decimal("1E+2")}
    assert type(back["n"]) is int
    assert type(back["d"]) is Decimal


def test_empty_sets_are_refused():
    with pytest.raises(CodecError) as excinfo:
        serialize_item({"tags": set()})
    assert excinfo.value.message == ERR_EMPTY_SET.format(path="tags")


def test_numbers_beyond_38_digits_are_refused_not_rounded():
    with pytest.raises(CodecError):
        serialize_item({"n": Decimal("1." + "1" * 40)})


def test_item_size_counts_names_and_values_and_refuses_over_400_kb():
    assert item_size({"ab": "xyz"}) == 5
    check_item_size({"data": "x" * (ITEM_MAX_BYTES - 10)})
    with pytest.raises(ItemTooLarge):
        check_item_size({"data": "x" * ITEM_MAX_BYTES})


@pytest.mark.parametrize(
    ("number", "significant"),
    [
        (0, 1),
        (100, 1),
        (Decimal("0.0120"), 2),
        (10**28 + 1, 29),  # beyond the default 28-digit context: normalize() used to round this to 1
        (-(10**37) - 3, 38),
    ],
)
def test_numbers_are_sized_from_their_exact_significant_digits(number, significant):
    expected = 1 + (significant + 1) // 2 + 1  # the name "n", then DynamoDB's number size
    assert item_size({"n": number}) == expected
    assert serialize_checked({"n": number})[1] == expected


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=20),
    st.integers(min_value=-(10**37), max_value=10**37),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
    st.binary(max_size=20),
)
values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=6))
def test_round_trip_of_arbitrary_nested_values_is_exact(item):
    assert roundtrip(item) == item


wire_values = st.recursive(
    json_leaf
    | st.datetimes()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=8)
    | st.frozensets(st.text(max_size=5), min_size=1, max_size=3)
    | st.integers(min_value=-(10**40), max_value=10**40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), wire_values, max_size=6))
def test_the_inline_serializer_and_wire_size_agree_with_the_general_codec(item):
    """serialize_item's fast path and serialize_checked's size must be exactly the general path's."""
    try:
        expected = {name: serialize_value(value, name) for name, value in item.items()}
    except CodecError as exc:
        refusal = exc.code
    else:
        refusal = None
    if refusal:
        # Same refusal; the inline path names the nested attribute (0[0]) where the general one says 0.
        with pytest.raises(CodecError) as excinfo:
            serialize_checked(item)
        assert excinfo.value.code == refusal
        return
    wire, size = serialize_checked(item)
    assert wire == expected
    assert size == item_size(item)


@given(st.dictionaries(st.text(min_size=1, max_size=10), wire_values, max_size=6))
def test_the_inline_deserializer_agrees_with_the_general_codec(item):
    try:
        wire = serialize_item(item)
    except CodecError:
        return
    assert deserialize_item(wire) == {name: deserialize_value(value) for name, value in wire.items()}


def test_the_inline_deserializer_keeps_integers_int_and_fractions_decimal():
    item = deserialize_item({"a": {"N": "100"}, "b": {"N": "-7"}, "c": {"N": "1.50"}, "d": {"N": "1E+2"}})
    assert [type(item[name]) for name in "abcd"] == [int, int, Decimal, Decimal]
    assert item == {name: deserialize_value(value) for name, value in {"d": {"N": "1E+2"}}.items()} | {
        "a": 100,
        "b": -7,
        "c": Decimal("1.50"),
    }
