import datetime as dt
import decimal
from decimal import Decimal

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lizzy.dynamodb import (
    ERR_EMPTY_SET,
    ERR_MAP_KEY,
    ERR_MIXED_SET,
    ERR_NAN,
    ERR_NUMBER,
    ERR_TYPE,
    ITEM_MAX_BYTES,
    CodecError,
    ItemTooLarge,
    check_item_size,
    deserialize_item,
    deserialize_value,
    get_client,
    item_size,
    number_refusal,
    serialize_checked,
    serialize_item,
    serialize_value,
)
from lizzy.dynamodb.codec import REASON_DIGITS, REASON_LARGE, REASON_SMALL


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


def _scientific(negative, coefficient, exponent):
    return Decimal(f"{'-' if negative else ''}{coefficient}E{exponent}")


# Numbers around DynamoDB's limits: 37 to 40 digits, trailing zeros, exponents from below 1E-130 (and below
# boto3's 1E-165) to past 9.99E+125, integers past 10**126; and hypothesis' own decimals.
edge_numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(
        _scientific,
        st.booleans(),
        st.integers(min_value=0, max_value=10**40)
        | st.builds(lambda c, z: c * 10**z, st.integers(0, 10**38), st.integers(0, 4)),
        st.integers(min_value=-175, max_value=130),
    ),
    st.integers(min_value=-(10**127), max_value=10**127),
    st.builds(lambda c, z: c * 10**z, st.integers(-(10**39), 10**39), st.integers(0, 100)),
)

wire_values = st.recursive(
    json_leaf
    | edge_numbers
    | st.frozensets(edge_numbers, min_size=1, max_size=3)
    | st.datetimes()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=8)
    | st.frozensets(st.text(max_size=5), min_size=1, max_size=3)
    | st.frozensets(st.integers(min_value=-(10**40), max_value=10**40), min_size=1, max_size=3)
    | st.frozensets(st.binary(max_size=5), min_size=1, max_size=3)
    | st.integers(min_value=-(10**40), max_value=10**40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


# DynamoDB's Number, by hand from the developer guide ("Data types"), not through the codec nor a decimal
# context: "up to 38 digits of precision ... Positive range: 1E-130 to 9.9999999999999999999999999999999999999E+125,
# Negative range: -9.9999999999999999999999999999999999999E+125 to -1E-130 ... Leading and trailing zeroes are
# trimmed." Decimal comparisons are exact whatever the context.
DYNAMODB_LARGEST = Decimal("9.9999999999999999999999999999999999999E+125")
DYNAMODB_SMALLEST = Decimal("1E-130")


def dynamodb_refuses(number):
    """The reason DynamoDB refuses a finite number, or None."""
    mantissa = f"{Decimal(number):E}".split("E")[0]  # the digits as written, one before the point
    significant = mantissa.lstrip("-").replace(".", "").strip("0")
    if len(significant) > 38:
        return REASON_DIGITS
    if number == 0:
        return None
    if Decimal(number).copy_abs() > DYNAMODB_LARGEST:  # copy_abs: exact (abs() rounds to 28 digits)
        return REASON_LARGE
    if Decimal(number).copy_abs() < DYNAMODB_SMALLEST:
        return REASON_SMALL
    return None


class DynamoDBSerializer(TypeSerializer):
    """boto3's TypeSerializer with DynamoDB's own number rule instead of boto3's decimal context (which takes
    1E-131 and 1E+126 and refuses 10**40): refused numbers raise, trailing zeros past 38 digits are trimmed."""

    def _serialize_n(self, value):
        if dynamodb_refuses(value):
            raise ArithmeticError(dynamodb_refuses(value))
        if isinstance(value, Decimal) and len(value.as_tuple().digits) > 38:
            return str(value.normalize(decimal.Context(prec=1000)))
        return str(value)


# The oracle: boto3's TypeSerializer/TypeDeserializer (numbers by DynamoDB's rule), fed values converted here,
# independently of lizzy.dynamodb.codec, by the rules the codec promises (floats exact, datetimes ISO 8601 UTC "Z").
def oracle_storable(value):
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dt.datetime):
        utc = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"
    if isinstance(value, dict):
        return {key: oracle_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [oracle_storable(item) for item in value]
    if isinstance(value, frozenset):
        return set(value)
    return value


def oracle_size(wire):
    """DynamoDB's documented item-size rules, applied to the wire form."""

    def number(text):
        digits = "".join(map(str, Decimal(text).as_tuple().digits)).strip("0") or "0"
        return (len(digits) + 1) // 2 + 1

    ((kind, body),) = wire.items()
    return {
        "S": lambda: len(body.encode()),
        "N": lambda: number(body),
        "B": lambda: len(body),
        "BOOL": lambda: 1,
        "NULL": lambda: 1,
        "M": lambda: 3 + sum(1 + len(k.encode()) + oracle_size(v) for k, v in body.items()),
        "L": lambda: 3 + sum(1 + oracle_size(v) for v in body),
        "SS": lambda: sum(len(m.encode()) for m in body),
        "NS": lambda: sum(number(m) for m in body),
        "BS": lambda: sum(len(m) for m in body),
    }[kind]()


def sorted_sets(wire):
    """Set members in a fixed order: a set's wire order is its iteration order, which is not a promise."""
    if isinstance(wire, dict):
        return {k: sorted(v, key=repr) if k in ("SS", "NS", "BS") else sorted_sets(v) for k, v in wire.items()}
    if isinstance(wire, list):
        return [sorted_sets(v) for v in wire]
    return wire


@settings(deadline=None)  # a timing on a shared machine is not what this proves
@given(st.dictionaries(st.text(min_size=1, max_size=10), wire_values, max_size=6))
def test_the_serializer_and_its_size_agree_with_boto3_and_the_documented_size_rules(item):
    try:
        expected = {name: DynamoDBSerializer().serialize(oracle_storable(value)) for name, value in item.items()}
    except (TypeError, ArithmeticError):  # numbers DynamoDB cannot store exactly: we refuse them too
        with pytest.raises(CodecError) as excinfo:
            serialize_checked(item)
        assert excinfo.value.code == "unstorable_value"
        return
    wire, size = serialize_checked(item)
    assert sorted_sets(wire) == sorted_sets(expected)
    assert sorted_sets(serialize_item(item)) == sorted_sets(expected)
    assert size == sum(len(name.encode()) + oracle_size(value) for name, value in expected.items())
    assert item_size(item) == size


class ExactDeserializer(TypeDeserializer):
    """boto3's TypeDeserializer without its decimal context, which refuses numbers DynamoDB holds (10**40 as
    41 digits, 38 digits near 1E-130: boto/boto3#2500)."""

    def _deserialize_n(self, value):
        return Decimal(value)


def oracle_value(value):
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else value
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {key: oracle_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [oracle_value(item) for item in value]
    if isinstance(value, set):
        return {oracle_value(item) for item in value}
    return value


@settings(deadline=None)  # a timing on a shared machine is not what this proves
@given(st.dictionaries(st.text(min_size=1, max_size=10), wire_values, max_size=6))
def test_the_deserializer_agrees_with_boto3(item):
    try:
        wire = serialize_item(item)
    except CodecError:
        return
    expected = {name: oracle_value(ExactDeserializer().deserialize(value)) for name, value in wire.items()}
    assert deserialize_item(wire) == expected
    assert {name: deserialize_value(value) for name, value in wire.items()} == expected


def test_the_deserializer_keeps_integers_int_and_fractions_decimal():
    item = deserialize_item({"a": {"N": "100"}, "b": {"N": "-7"}, "c": {"N": "1.50"}, "d": {"N": "1E+2"}})
    assert [type(item[name]) for name in "abcd"] == [int, int, Decimal, Decimal]
    assert item == {"a": 100, "b": -7, "c": Decimal("1.50"), "d": Decimal("100")}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"a": {"b": [1, {"c": float("nan")}]}}, ERR_NAN.format(path="a.b[1].c")),
        ({"a": [set()]}, ERR_EMPTY_SET.format(path="a[0]")),
        ({"a": {"b": {1, "x"}}}, ERR_MIXED_SET.format(path="a.b")),
        ({"a": {"b": {1: "x"}}}, ERR_MAP_KEY.format(path="a.b")),
        ({"a": [object()]}, ERR_TYPE.format(type="object", path="a[0]")),
        ({"a": {"n": 10**40 + 1}}, ERR_NUMBER.format(value=10**40 + 1, reason=REASON_DIGITS, path="a.n")),
        ({"a": [frozenset({1.5, float("inf")})]}, ERR_NAN.format(path="a[0]{}")),
    ],
)
def test_refusals_name_the_nested_attribute(item, message):
    with pytest.raises(CodecError) as excinfo:
        serialize_checked(item)
    assert excinfo.value.message == message
    assert excinfo.value.details == {"attribute": message.split("(attribute ")[1].rstrip(").")}
    with pytest.raises(CodecError) as again:
        serialize_item(item)
    assert again.value.message == message


def test_a_refused_value_in_an_expression_names_its_placeholder():
    with pytest.raises(CodecError) as excinfo:
        serialize_value({"x": float("inf")}, ":v")
    assert excinfo.value.message == ERR_NAN.format(path=":v.x")


@settings(max_examples=200, deadline=None)
@given(edge_numbers)
def test_the_codec_takes_exactly_the_numbers_dynamodb_takes(number):
    reason = dynamodb_refuses(number)
    assert number_refusal(number) == reason
    if reason:
        with pytest.raises(CodecError) as excinfo:
            serialize_checked({"PK": "k", "n": {"deep": [number]}})
        assert excinfo.value.message == ERR_NUMBER.format(value=number, reason=reason, path="n.deep[0]")
        return
    ((_kind, text),) = serialize_value(number).items()
    assert Decimal(text) == number  # exact: never rounded
    assert deserialize_value({"N": text}) == number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (Decimal("1E-131"), REASON_SMALL),
        (Decimal("-1E-131"), REASON_SMALL),
        (Decimal("9.9999999999999999999999999999999999999E-131"), REASON_SMALL),
        (Decimal("1E-165"), REASON_SMALL),  # boto3's smallest subnormal
        (Decimal("1E+126"), REASON_LARGE),
        (10**126, REASON_LARGE),
        (Decimal("1.2345678901234567890123456789012345678E+126"), REASON_LARGE),
        (10**38 + 1, REASON_DIGITS),
        (Decimal("0.123456789012345678901234567890123456789"), REASON_DIGITS),
        (Decimal("1E-130"), None),
        (Decimal("-1E-130"), None),
        (Decimal("1.2345678901234567890123456789012345678E-129"), None),  # 38 digits near 1E-130: boto3 refuses
        (Decimal("9.9999999999999999999999999999999999999E+125"), None),
        (10**40, None),  # one significant digit, 41 written: DynamoDB trims trailing zeros, boto3 refuses
        (Decimal("1.0000000000000000000000000000000000000000"), None),
        (Decimal("0E-200"), None),
    ],
)
def test_dynamodbs_number_limits_by_example(number, reason):
    assert dynamodb_refuses(number) == reason  # the oracle itself, checked on hand-picked values
    assert number_refusal(number) == reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edge_numbers)
def test_what_the_codec_sends_the_endpoint_takes_and_what_it_refuses_moto_refuses(dynamodb, number):
    """moto enforces DynamoDB's range (by float, so only clear of the limits) but not the 38 digits."""
    client = get_client()
    if "codec-numbers" not in client.list_tables()["TableNames"]:
        client.create_table(
            TableName="codec-numbers",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    reason = dynamodb_refuses(number)
    if reason is None:
        client.put_item(TableName="codec-numbers", Item=serialize_item({"PK": "k", "n": number}))
        stored = client.get_item(TableName="codec-numbers", Key={"PK": {"S": "k"}})["Item"]["n"]
        assert Decimal(stored["N"]) == number
        return
    with pytest.raises(CodecError):
        serialize_item({"n": number})
    magnitude = Decimal(number).copy_abs()
    if (reason == REASON_SMALL and magnitude < Decimal("0.999E-130")) or (
        reason == REASON_LARGE and magnitude > Decimal("1.001E+126")
    ):
        with pytest.raises(client.exceptions.ClientError, match="Number (underflow|overflow)|numeric value"):
            client.put_item(TableName="codec-numbers", Item={"PK": {"S": "k"}, "n": {"N": str(number)}})
