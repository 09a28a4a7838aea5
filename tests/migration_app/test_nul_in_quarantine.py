"""A NUL character (U+0000) in source data: PostgreSQL's text and jsonb refuse it. A bad row, its key or its
reason is quarantined with it as the text ``\\u0000`` (``nul_escaped``) instead of failing the INSERT; a key
holding one is checkpointed in base64 (``encode_key``), so the unit's checkpoint UPDATE does not fail either
(a run over such keys: tests/review0304d/test_nul_in_text_key_fails_checkpoint.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration_app.models import MigrationPlan, QuarantinedRow, nul_escaped
from migration_app.services.writer import BadRow
from migration_app.sources.base import decode_key, encode_key

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


@given(st.lists(st.text() | st.integers(), min_size=1, max_size=3))
def test_a_checkpoint_key_with_nuls_round_trips_through_json_without_a_nul(key):
    # a text key may hold NUL (SQLite, MySQL, DuckDB); the checkpoint (jsonb) holds it as base64 text
    encoded = encode_key(key)
    text = json.dumps(encoded)
    assert "\\u0000" not in text
    assert decode_key(json.loads(text)) == key
    if not any(isinstance(value, str) and "\x00" in value for value in key):
        assert encoded == key  # the common key is stored as it is
