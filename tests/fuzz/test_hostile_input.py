"""Hostile and malformed input below the API: the mapping template language, DynamoDB keys with unusual
characters, attribute names that are DynamoDB reserved words, items at and over 400 KB.

(The codec's round trip of arbitrary nested values and phone normalisation have their hypothesis
tests in tests/lizzy/test_dynamodb_codec.py and tests/lizzy/test_phone.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lizzy.dynamodb import (
    ITEM_MAX_BYTES,
    ItemTooLarge,
    check_item_size,
    dynamodb_batch_get,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_update_item,
    item_size,
)
from lizzy.errors import ApplicationError
from lizzy.tables import SESSIONS
from migration_app.services.templates import FUNCTIONS, Template
from tests.fixtures.dynamodb_hooks import record_calls

FIXTURE_OK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MOTO_ITEM_LIMIT = 405_000  # moto/dynamodb/models/dynamo_type.py: "actual limit is between 409 and 410KB"
# A sample of DynamoDB's 573 reserved words, the ones a CRM's columns are likely to be called.
RESERVED = ["name", "status", "date", "data", "key", "size", "order", "comment", "user", "value", "year", "zone"]

cell = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9),
    st.booleans(),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda value: value.isoformat()),
)
expression = st.recursive(
    st.sampled_from(["email", "id", "created", "'lit'", "42", "-1.5"]),
    lambda inner: st.builds(
        lambda name, args: f"{name}({', '.join(args)})",
        st.sampled_from(sorted(FUNCTIONS)),
        st.lists(inner, min_size=0, max_size=3),
    ),
    max_leaves=6,
)


@given(source=st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_template_text_parses_or_is_refused_with_a_template_error(source):
    with contextlib.suppress(ApplicationError):  # refused with a message naming the problem: fine
        Template.parse(source)


@given(expr=expression, row=st.fixed_dictionaries({"email": cell, "id": cell, "created": cell}))
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_function_templates_render_any_row_or_refuse_it_cleanly(expr, row, settings_hmac):
    try:
        template = Template.parse("K#${" + expr + "}")
    except ApplicationError:
        return  # wrong arity and the like: refused at parse time
    try:
        rendered = template.render(row)
    except ApplicationError:
        return  # a value the function cannot take: refused with a message, nothing written
    assert isinstance(rendered, str)


@pytest.fixture
def settings_hmac(settings):
    settings.LIZZY_MAPPING_HMAC_KEY = "fuzz-test-key-not-a-secret"  # noqa: S105


key_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=200)


@given(phone=key_text)
@FIXTURE_OK
def test_keys_with_unusual_characters_round_trip(phone, dynamodb):
    item = {"phone": phone, "version": 1, "note": phone[::-1]}
    dynamodb_put_item(table=SESSIONS.name, item=item)
    assert dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True) == item
    assert dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": phone}], consistent=True) == [item]


def test_reserved_words_as_attribute_names_are_stored_and_updated(dynamodb):
    item = {"phone": "+12065550100", **{word: f"{word}-value" for word in RESERVED}, "ttl": 2000000000}
    dynamodb_put_item(table=SESSIONS.name, item=item)
    names = {f"#{word}": word for word in RESERVED}
    values = {f":{word}": Decimal(len(word)) for word in RESERVED}
    dynamodb_update_item(
        table=SESSIONS.name,
        key={"phone": "+12065550100"},
        update="SET " + ", ".join(f"#{word} = :{word}" for word in RESERVED),
        names=names,
        values=values,
    )
    stored = dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"}, consistent=True)
    assert {word: stored[word] for word in RESERVED} == {word: len(word) for word in RESERVED}


def test_an_item_of_exactly_400_kb_passes_the_check_and_one_byte_more_is_refused_before_any_call(dynamodb):
    base = {"phone": "+12065550100", "blob": ""}
    at_limit = {**base, "blob": "x" * (ITEM_MAX_BYTES - item_size(base))}
    assert check_item_size(at_limit) == ITEM_MAX_BYTES  # AWS's limit, names included: accepted
    # moto refuses from 405,000 bytes (its own estimate of AWS's limit): store the largest it takes
    near_limit = {**base, "blob": "x" * (MOTO_ITEM_LIMIT - item_size(base))}
    dynamodb_put_item(table=SESSIONS.name, item=near_limit)
    assert dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"}, consistent=True) == near_limit

    over = {**at_limit, "blob": at_limit["blob"] + "x"}
    with record_calls() as calls, pytest.raises(ItemTooLarge):
        dynamodb_put_item(table=SESSIONS.name, item=over)
    assert calls == []
    assert dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"}, consistent=True) == near_limit
