"""A NUL character (U+0000) in a bad row, its key or its reason: PostgreSQL's text and jsonb refuse it, so the
quarantine stores it as the text ``\\u0000`` (``nul_escaped``) instead of failing the INSERT."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration_app.models import MigrationPlan, QuarantinedRow, nul_escaped
from migration_app.services.writer import BadRow

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from("a\x00\\u0é")),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet=st.sampled_from("k\x00"), max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@given(json_values)
def test_no_nul_is_left_and_nothing_else_changes(value):
    escaped = nul_escaped(value)
    assert not any("\x00" in text for text in strings(escaped))
    assert list(strings(escaped)) == [text.replace("\x00", "\\u0000") for text in strings(value)]
    if not any("\x00" in text for text in strings(value)):
        assert escaped == value


@pytest.mark.django_db
def test_a_bad_row_with_nuls_is_stored_as_text_postgresql_holds():
    plan = MigrationPlan.objects.create(name="nul", source_url="sqlite:///nul.sqlite3", mapping={"rules": []})
    bad = BadRow({"id": "a\x00b"}, "value 'x\x00y' refused", {"name": "bad\x00name", "tags": ["\x00"]})
    row = QuarantinedRow.objects.create(
        plan=plan,
        rule="r",
        source_table="main.t",
        target_table="T",
        source_key=bad.source_key,
        reason=bad.reason,
        row=bad.row,
    )
    row.refresh_from_db()
    assert (row.source_key, row.reason, row.row) == (
        {"id": "a\\u0000b"},
        "value 'x\\u0000y' refused",
        {"name": "bad\\u0000name", "tags": ["\\u0000"]},
    )
