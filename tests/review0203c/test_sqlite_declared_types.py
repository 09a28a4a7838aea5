"""SQLite's declared types read once per type (issue 14, third round): a cache keyed by the declared type's text,
and columns whose type reads nothing skipped. Each test is the table most likely to make a cached answer the
wrong one: one column name with two declared types in two tables, a column without a declared type holding
values of every storage class, declared types whose names contain another's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from migration_app.services.types import Unreadable
from migration_app.sources import source_open
from migration_app.sources.base import Relation


def _read(url: str, table: str) -> list[dict]:
    source = source_open(url=url)
    try:
        relation = Relation("main", table, None, ("id",))
        return [
            {k: v for k, v in row.items() if not k.startswith("__")}
            for page in source.pages(relation, after=None, upper=None, page_size=100)
            for row in page
        ]
    finally:
        source.close()


def test_one_column_name_with_two_declared_types_reads_each_tables_by_its_own(sqlite_source):
    url = sqlite_source(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v BOOLEAN, w JSON);"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, v DECIMAL(10, 2), w TEXT);"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, v TIMESTAMP, w INTEGER);",
        {
            "a": [{"id": 1, "v": 1, "w": '{"n": 1.5}'}, {"id": 2, "v": "false", "w": "[1]"}],
            "b": [{"id": 1, "v": "1.50", "w": '{"n": 1.5}'}, {"id": 2, "v": 2.25, "w": "[1]"}],
            "c": [{"id": 1, "v": "2025-01-01T00:00:00Z", "w": "1"}],
        },
    )
    # read interleaved, so a cache filled by one table's types answers the next table's first
    first_a, first_b, first_c, again_a = _read(url, "a"), _read(url, "b"), _read(url, "c"), _read(url, "a")

    assert (
        first_a
        == again_a
        == [
            {"id": 1, "v": True, "w": {"n": Decimal("1.5")}},
            {"id": 2, "v": False, "w": [1]},
        ]
    )
    assert first_b == [{"id": 1, "v": Decimal("1.50"), "w": '{"n": 1.5}'}, {"id": 2, "v": Decimal("2.25"), "w": "[1]"}]
    assert first_c == [{"id": 1, "v": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "w": 1}]


def test_a_column_without_a_declared_type_keeps_every_values_own_type(sqlite_source):
    values = [1, 2.5, "true", '{"a": 1}', b"\x00\x01", "2025-01-01T00:00:00Z", "1.50", None, 10**18]
    url = sqlite_source(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
        {"t": [{"id": number, "v": value} for number, value in enumerate(values, 1)]},
    )

    assert [row["v"] for row in _read(url, "t")] == values
    assert [type(row["v"]) for row in _read(url, "t")] == [type(value) for value in values]


def test_declared_types_are_read_by_what_they_contain_as_before(sqlite_source):
    # SQLite's affinity rules take any type name; the reader goes by the words in it ("BOOL" in BOOLEAN_FLAG,
    # "NUMERIC" in NUMERIC_TEXT), the same whether the answer is cached or not
    url = sqlite_source(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, f boolean_flag, n numeric_text, j jsonb, s DATETIME2, "
        "x FLOATING POINT)",
        {"t": [{"id": 1, "f": 2, "n": "abc", "j": "not json", "s": "2025-01-01 00:00:00", "x": 3}]},
    )

    (row,) = _read(url, "t")
    assert isinstance(row["f"], Unreadable)
    assert "is not 0 or 1" in row["f"].problem
    assert isinstance(row["n"], Unreadable)
    assert isinstance(row["j"], Unreadable)
    assert row["s"] == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert row["x"] == 3
