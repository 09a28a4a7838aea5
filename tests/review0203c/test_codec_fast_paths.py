"""The codec's and ``storable``'s fast paths (issue 14, third round): ``Decimal`` tested by exact type before the
Mapping check, plain list and map members kept without a path, the str size inlined. Each test is a value
most likely to slip through a fast path: Decimal subclasses, NaN/Infinity/-0, bools among numbers in a list,
numbers past 38 digits deep in lists and maps, text DynamoDB's UTF-8 cannot hold.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from lizzy.dynamodb import CodecError, serialize_item
from migration_app.models import QuarantinedRow, RunStatus
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.types import ValueRefused, storable
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

DIGITS_39 = Decimal("1" * 39)


class Money(Decimal):
    """A Decimal subclass (what a driver's or a transform's numeric type may be)."""


def test_a_decimal_subclass_is_a_number_with_dynamodbs_limits():
    assert serialize_item({"x": Money("1.50")}) == {"x": {"N": "1.50"}}
    with pytest.raises(CodecError, match="NaN or Infinity") as refused:
        serialize_item({"x": [Money("NaN")]})
    assert refused.value.details["attribute"] == "x[0]"
    with pytest.raises(CodecError, match="more than 38 significant digits"):
        serialize_item({"x": {"m": [Money(DIGITS_39)]}})


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_decimal_nan_and_infinity_are_refused_with_their_path_however_deep(value):
    with pytest.raises(CodecError, match="NaN or Infinity") as refused:
        serialize_item({"x": {"a": [[value]]}})
    assert refused.value.details["attribute"] == "x.a[0][0]"
    with pytest.raises(ValueRefused, match=r"x\.a\[0\]\[0\]: NaN and Infinity"):
        storable({"a": [[value]]}, "x")


def test_negative_zero_is_a_zero():
    assert serialize_item({"x": [Decimal("-0"), Decimal("0E-200"), Decimal("-0E+300")]}) == {
        "x": {"L": [{"N": "-0"}, {"N": "0"}, {"N": "0"}]}
    }


def test_bools_among_numbers_in_a_list_stay_bools():
    value = [True, 1, False, 0, Decimal("1"), None, "1"]
    assert storable(value, "x") == value
    assert [type(member) for member in storable(value, "x")] == [bool, int, bool, int, Decimal, type(None), str]
    assert serialize_item({"x": value}) == {
        "x": {"L": [{"BOOL": True}, {"N": "1"}, {"BOOL": False}, {"N": "0"}, {"N": "1"}, {"NULL": True}, {"S": "1"}]}
    }


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([1, "a", DIGITS_39], "x[2]"),
        ({"m": [True, [DIGITS_39]]}, "x.m[1][0]"),
        ([{"m": {"n": [Decimal("1E-131")]}}], "x[0].m.n[0]"),
        ([Decimal("1E+126")], "x[0]"),
    ],
)
def test_numbers_dynamodb_cannot_hold_are_refused_in_lists_and_maps_with_their_path(value, path):
    with pytest.raises(ValueRefused) as refused:
        storable(value, "x")
    assert refused.value.message.startswith(path + ":")
    with pytest.raises(CodecError) as coded:
        serialize_item({"x": value})
    assert coded.value.details["attribute"] == path


@pytest.mark.parametrize("value", ["\ud800", ["ok", "\udfff"], {"m": "a\ud83d"}])
def test_text_utf8_cannot_hold_is_refused_with_its_path_not_a_crash(value):
    # a lone surrogate: what json.loads makes of "\ud800" in a JSON document (SQLite JSON, PostgreSQL json,
    # MariaDB JSON); DynamoDB strings are UTF-8, which cannot hold it
    with pytest.raises(CodecError) as refused:
        serialize_item({"x": value})
    assert refused.value.details["attribute"].startswith("x")


@pytest.mark.django_db
def test_a_row_whose_json_holds_a_lone_surrogate_is_quarantined_and_the_others_written(dynamodb, sqlite_source):
    # given three rows, the second's JSON column holding "\ud800" (valid JSON text, no UTF-8 form)
    rows = things_rows(3)
    rows[1]["tags"] = '["\\ud800"]'
    url = sqlite_source(THINGS_DDL, {"things": rows})
    plan = plan_save(name="things", source_url=url, mapping=things_mapping(), max_bad_rows=1)

    # when the run goes
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)

    # then that row is a bad row (quarantined with its key), the others are written, the run succeeded
    assert (run.status, run.items_written, run.last_error) == (RunStatus.SUCCEEDED, 2, "")
    (reason,) = QuarantinedRow.objects.values_list("reason", flat=True)
    assert "tags" in reason
