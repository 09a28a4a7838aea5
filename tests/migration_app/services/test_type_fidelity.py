"""Property: every PostgreSQL type the engine promises arrives in DynamoDB with its exact value."""

import datetime as dt
import uuid
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from lizzy.dynamodb import dynamodb_get_item, number_refusal
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.types import ValueRefused, storable, timestamp_text
from tests.lizzy.test_dynamodb_codec import dynamodb_refuses, edge_numbers

DDL = """
CREATE TABLE typed (id integer PRIMARY KEY, i bigint, n numeric, f double precision, b boolean, ts timestamptz,
  d date, u uuid, j jsonb, a integer[], by bytea, t text)
"""
COLUMNS = ["id", "i", "n", "f", "b", "ts", "d", "u", "j", "a", "by", "t"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=5).filter(lambda key: "\x00" not in key), children, max_size=3)
    ),
    max_leaves=6,
)
rows = st.fixed_dictionaries(
    {
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        # DynamoDB numbers: 38 significant digits, magnitude 1E-130 to 9.99E+125
        "n": st.none()
        | st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
        "f": st.none()
        | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e100, max_value=1e100).filter(
            lambda value: value == 0 or abs(value) > 1e-100
        ),
        "b": st.none() | st.booleans(),
        "ts": st.none()
        | st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)),
        "d": st.none() | st.dates(min_value=dt.date(1, 1, 1)),
        "u": st.none() | st.uuids(),
        "j": st.none() | json_values.filter(lambda value: value is not None),
        "a": st.none() | st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4),
        "by": st.none() | st.binary(min_size=1, max_size=16),
        "t": st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    }
)


def _expected(value):
    if isinstance(value, dt.datetime):
        return timestamp_text(value)  # one fraction width, always (docs/MIGRATIONS.md, Types)
    if isinstance(value, (dt.date, uuid.UUID)):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return value


def _same(stored, original):
    if isinstance(original, float):
        return float(stored) == original
    if isinstance(original, Decimal):
        return Decimal(stored) == original
    return stored == _expected(original)


@pytest.mark.integration
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(rows, min_size=1, max_size=4))
def test_values_survive_exactly_and_nulls_follow_the_flag(batch, db, dynamodb, postgres_source):
    with psycopg.connect(postgres_source) as connection:
        connection.execute("DROP TABLE IF EXISTS typed")
        connection.execute(DDL)
        for number, row in enumerate(batch):
            values = [number] + [
                Jsonb(row["j"]) if name == "j" and row["j"] is not None else row[name] for name in COLUMNS[1:]
            ]
            connection.execute(f"INSERT INTO typed ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * 12)})", values)  # noqa: S608
    for keep_nulls, table in ((False, "TypedDrop"), (True, "TypedKeep")):
        mapping = {
            "rules": [
                {
                    "rule-type": "object-mapping",
                    "rule-id": "1",
                    "rule-name": "typed",
                    "rule-action": "map-record-to-record",
                    "object-locator": {"schema-name": "public", "table-name": "typed"},
                    "target-table-name": table,
                    "keep-nulls": keep_nulls,
                }
            ]
        }
        plan = plan_save(name=table.lower(), source_url=postgres_source, mapping=mapping)
        with plan_context(plan=plan) as context:
            plan_setup_tables(context=context)
            assert run_execute(run=run_create(context=context), context=context).status == "succeeded"
        for number, row in enumerate(batch):
            item = dynamodb_get_item(table=table, key={"id": number})
            for name, original in row.items():
                if original is None:
                    assert (name in item) is keep_nulls
                    assert item.get(name) is None
                else:
                    assert _same(item[name], original), (name, item[name], original)


@settings(max_examples=200, deadline=None)
@given(edge_numbers)
def test_the_transform_refuses_a_number_exactly_when_dynamodb_and_the_codec_do(number):
    """types.storable (a row error at transform time) and the writer's codec agree with DynamoDB's limits."""
    reason = dynamodb_refuses(number)
    assert number_refusal(number) == reason
    if reason:
        with pytest.raises(ValueRefused):
            storable(number, "n")
    else:
        assert storable(number, "n") == number
