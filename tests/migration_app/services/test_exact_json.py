"""``exact_json`` (one JSONDecoder for every JSON column value) reads what ``json.loads(text,
parse_float=Decimal)`` reads, and refuses what it refuses, with the same error."""

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lizzy.exact_json import exact_json

documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)


def _reference(text):
    try:
        return ("value", json.loads(text, parse_float=Decimal))
    except (ValueError, TypeError) as exc:
        return ("error", type(exc), str(exc))


def _ours(text):
    try:
        return ("value", exact_json(text))
    except (ValueError, TypeError) as exc:
        return ("error", type(exc), str(exc))


def _spellings(document) -> list:
    text = json.dumps(document, default=str)
    encoded = [text.encode(), text.encode("utf-16"), bytearray(text.encode())]
    return [text, *encoded, "\ufeff" + text, text[:-1], " " + text]


@given(documents)
def test_exact_json_reads_every_document_as_json_loads_with_decimal_fractions(document):
    for text in _spellings(document):
        assert repr(_ours(text)) == repr(_reference(text))


@pytest.mark.parametrize(
    "text",
    ['{"price": 19.99}', "[1e400, -0.0, 0.1]", '"\\ud800"', "NaN", "", "{", "1 2", 12, None, b"\xff"],
)
def test_exact_json_agrees_on_edges(text):
    assert repr(_ours(text)) == repr(_reference(text))
    if text == '{"price": 19.99}':
        assert exact_json(text) == {"price": Decimal("19.99")}


def test_session_documents_in_redis_are_read_by_the_same_function():
    """One reader for the product's JSON: the hot tier's documents (bytes from Redis) as the sources' columns."""
    from lizzy.redis import json_loads

    assert json_loads is exact_json
    stored = b'{"phone_state": "ORDER", "total": 1234567890.123456789012345678901234567}'
    assert json_loads(stored) == {"phone_state": "ORDER", "total": Decimal("1234567890.123456789012345678901234567")}
    assert json_loads(bytearray(stored)) == json_loads(stored.decode())
