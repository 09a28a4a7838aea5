"""Issue 12: a run says "succeeded" and a validation "clean" only when every source row is in DynamoDB, exactly.

Each test is one scenario of the issue, on every engine where it applies (``engine`` is parametrized over
SQLite, PostgreSQL, DuckDB and MariaDB by ``tests/migration_app/conftest.py``).
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item, dynamodb_scan_segment
from migration_app.models import Phase, QuarantinedRow
from migration_app.services.backups import backup_restore, backup_table
from migration_app.services.mapping import MappingError
from migration_app.services.phases import PhaseGuardFailed, phase_guard
from migration_app.services.plans import plan_check, plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from migration_app.sources.base import SqlSource


def _migrate(name, mapping, url, *, segments=1, max_bad_rows=None):
    plan = plan_save(name=name, source_url=url, mapping=mapping, max_bad_rows=max_bad_rows)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context, segments=segments), context=context)
    return plan, run


def _select(table="%", action="include", **extra):
    return {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "pick",
        "object-locator": {"schema-name": "%", "table-name": table},
        "rule-action": action,
        **extra,
    }


def _object(table, target, rule_name="map", **params):
    rule = {
        "rule-type": "object-mapping",
        "rule-id": "2",
        "rule-name": rule_name,
        "rule-action": "map-record-to-record",
        "object-locator": {"schema-name": "%", "table-name": table},
        "target-table-name": target,
    }
    extra = {key: params.pop(key) for key in list(params) if key in ("key-collisions",)}
    if params:
        rule["mapping-parameters"] = params
    return {**rule, **extra}


def _items(table):
    return list(dynamodb_scan_segment(table=table, consistent=True))


# --- keys --------------------------------------------------------------------------------------------

WIDE_DDL = (
    "CREATE TABLE stock (region VARCHAR(10), store INTEGER, sku VARCHAR(20), qty INTEGER, "
    "PRIMARY KEY (region, store, sku))"
)
WIDE_ROWS = [{"region": f"r{n % 3}", "store": n % 5, "sku": f"sku-{n}", "qty": n} for n in range(300)]


def test_a_three_column_key_without_object_mapping_is_refused_not_truncated(db, dynamodb, make_source):
    url = make_source(WIDE_DDL, {"stock": WIDE_ROWS})

    with pytest.raises(MappingError) as error:
        plan_save(name="wide", source_url=url, mapping={"rules": [_select("stock")]})

    assert "region, store, sku" in error.value.message
    assert "at most two" in error.value.message
    assert "stock" not in [t.lower() for t in _tables()]


def _tables():
    from lizzy.dynamodb import dynamodb_list_tables

    return dynamodb_list_tables()


def test_a_three_column_key_combined_by_the_mapping_pages_on_composite_keys(db, dynamodb, make_source, settings):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 7  # many pages: the row-value keyset comparison on 3 columns
    url = make_source(WIDE_DDL, {"stock": WIDE_ROWS})
    mapping = {
        "rules": [
            _object(
                "stock",
                "Stock",
                **{
                    "partition-key-name": "PK",
                    "sort-key-name": "SK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "${region}"},
                        {"target-attribute-name": "SK", "attribute-type": "scalar", "value": "${store}#${sku}"},
                    ],
                },
            )
        ]
    }

    plan, run = _migrate("wide", mapping, url, segments=3)

    assert run.status == "succeeded", run.last_error
    assert run.rows_read == 300
    assert len(_items("Stock")) == 300
    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    assert report.counts[0]["source_rows"] == report.counts[0]["target_items"] == 300


def test_rows_that_collapse_onto_one_key_fail_the_run_and_last_wins_fails_validation(db, dynamodb, make_source):
    url = make_source(WIDE_DDL, {"stock": WIDE_ROWS})
    params = {
        "partition-key-name": "PK",
        "sort-key-name": "SK",
        "attribute-mappings": [
            {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "${region}"},
            {"target-attribute-name": "SK", "attribute-type": "scalar", "value": "${store}"},
        ],
    }

    # by default: an error naming both source keys
    _plan, run = _migrate("collide", {"rules": [_object("stock", "Stock", **params)]}, url)
    assert run.status == "failed"
    assert "comes from two source rows" in run.last_error
    assert "(written first) and {'region':" in run.last_error

    # last-wins, chosen in the mapping: the run succeeds, and the count reconciliation says what was lost
    mapping = {"rules": [_object("stock", "Stock", **params, **{"key-collisions": "last-wins"})]}
    plan, run = _migrate("collide", mapping, url)
    assert run.status == "succeeded", run.last_error
    report = plan_validate(plan=plan)
    assert not report.clean
    assert report.count_mismatches == 1
    assert report.samples["counts"][0]["source_rows"] == 300
    assert report.samples["counts"][0]["target_items"] == 15  # 3 regions x 5 stores


NULL_KEY_DDL = "CREATE TABLE parts (id INTEGER PRIMARY KEY, sku VARCHAR(20), name VARCHAR(20))"


def test_a_null_inside_a_key_template_is_a_row_error_not_a_collision(db, dynamodb, make_source):
    rows = [{"id": n, "sku": None if n in (3, 7) else f"S{n}", "name": f"part {n}"} for n in range(1, 11)]
    url = make_source(NULL_KEY_DDL, {"parts": rows})
    mapping = {
        "rules": [
            _object(
                "parts",
                "Parts",
                **{
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "SKU#${sku}"}
                    ],
                },
            )
        ]
    }

    plan, run = _migrate("nullkey", mapping, url)
    assert run.status == "failed"
    assert "source key {'id': 3}" in run.last_error
    assert "NULL column(s) sku" in run.last_error

    # with room for two bad rows the run goes through; both are in the quarantine, named
    plan, run = _migrate("nullkey", mapping, url, max_bad_rows=2)
    assert run.status == "succeeded", run.last_error
    assert sorted(row.source_key["id"] for row in QuarantinedRow.objects.filter(run=run)) == [3, 7]
    assert "SKU#" not in {item["PK"] for item in _items("Parts")}
    assert len(_items("Parts")) == 8


def test_a_misspelt_mapping_key_is_an_error_naming_the_path_and_the_nearest_key():
    from migration_app.services.mapping import mapping_parse

    mapping = {"rules": [_object("t", "Target", **{"partition-key-name": "a", "sort-key-nam": "b"})]}

    with pytest.raises(MappingError) as error:
        mapping_parse(document=mapping)

    assert error.value.details["field"] == "mapping-parameters"
    assert "'sort-key-nam' at mapping-parameters.sort-key-nam; did you mean 'sort-key-name'?" in error.value.message


@pytest.mark.parametrize(
    ("rule", "path", "hint"),
    [
        (
            {"rule-type": "selection", "rule-id": "1", "object-locator": {"table-nme": "t"}, "rule-action": "include"},
            "object-locator.table-nme",
            "table-name",
        ),
        ({**_select(), "rule-acton": "include"}, "rule.rule-acton", "rule-action"),
        (
            {**_select("t", filters=[{"filter-type": "source", "column-nam": "x", "filter-conditions": []}])},
            "filters[0].column-nam",
            "column-name",
        ),
        ({**_object("t", "Target"), "entity-typ": "x"}, "rules[0].entity-typ", "entity-type"),
    ],
)
def test_unknown_keys_at_every_level(rule, path, hint):
    from migration_app.services.mapping import mapping_parse

    with pytest.raises(MappingError) as error:
        mapping_parse(document={"rules": [rule]})

    assert f"at {path}" in error.value.message
    assert repr(hint) in error.value.message


# --- numbers -----------------------------------------------------------------------------------------

NUMERIC_DDL = {
    "sqlite": "CREATE TABLE amounts (id INTEGER PRIMARY KEY, n DECIMAL(38,0), f DECIMAL(38,10))",
    "postgres": "CREATE TABLE amounts (id integer PRIMARY KEY, n numeric(38,0), f numeric(38,10))",
    "duckdb": "CREATE TABLE amounts (id INTEGER PRIMARY KEY, n DECIMAL(38,0), f DECIMAL(38,10))",
    "mariadb": "CREATE TABLE amounts (id INTEGER PRIMARY KEY, n DECIMAL(38,0), f DECIMAL(38,10))",
}
BIG = Decimal("12345678901234567890123456789012345678")  # 38 digits
FRACTION = Decimal("1234567890123456789012345678.0123456789")  # 38 digits


# SQLite is left out: its NUMERIC affinity stores a number beyond 64-bit integers as an 8-byte float, so
# the source itself no longer holds 38 digits (what it holds is migrated exactly, as the float's repr).
@pytest.mark.parametrize("engine", ["postgres", "duckdb", "mariadb"])
def test_numbers_of_38_digits_are_exact_through_transform_validation_backup_and_restore(
    db, dynamodb, make_source, engine
):
    rows = [{"id": 1, "n": BIG, "f": FRACTION}, {"id": 2, "n": -BIG, "f": Decimal("0.5")}]
    url = make_source(NUMERIC_DDL, {"amounts": rows})

    plan, run = _migrate("numbers", {"rules": [_select("amounts")]}, url)

    assert run.status == "succeeded", run.last_error
    item = dynamodb_get_item(table="amounts", key={"id": 1}, consistent=True)
    assert item["n"] == BIG
    assert Decimal(item["f"]) == FRACTION
    assert plan_validate(plan=plan).clean
    # a change in the 30th digit is a difference, not rounding noise
    changed = Decimal(str(BIG)[:29] + "9" + str(BIG)[30:])  # the 30th digit, 0 → 9
    assert changed != BIG
    dynamodb_put_item(table="amounts", item={**item, "n": changed})
    report = plan_validate(plan=plan)
    assert report.different == 1
    # backups keep the digits; a restore writes them back exactly and verifies
    dynamodb_put_item(table="amounts", item=item)
    backup = backup_table(table="amounts")
    dynamodb_put_item(table="amounts", item={**item, "n": 1})
    assert backup_restore(backup=backup)["verified"]
    assert dynamodb_get_item(table="amounts", key={"id": 1}, consistent=True)["n"] == BIG
    assert plan_validate(plan=plan).clean


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_value_dynamodb_cannot_hold_exactly_is_refused_at_check_time_naming_the_column(db, make_source, engine):
    ddl = {
        "postgres": "CREATE TABLE wide_numbers (id integer PRIMARY KEY, ok numeric, huge numeric)",
        "mariadb": "CREATE TABLE wide_numbers (id INTEGER PRIMARY KEY, ok DECIMAL(65,1), huge DECIMAL(65,1))",
    }
    huge = Decimal("1234567890123456789012345678901234567890.5")  # 41 significant digits
    url = make_source(ddl, {"wide_numbers": [{"id": 1, "ok": Decimal("1.5"), "huge": huge}]})
    mapping = {"rules": [_select("wide_numbers")]}

    with pytest.raises(MappingError) as error:
        plan_check(mapping=mapping, source_url=url, probe_values=True)

    assert "column 'huge'" in error.value.message
    assert "'ok'" not in error.value.message
    # a filter that leaves the value out leaves the column acceptable
    mapping["rules"][0]["filters"] = [
        {"filter-type": "source", "column-name": "id", "filter-conditions": [{"filter-operator": "gte", "value": "2"}]}
    ]
    plan_check(mapping=mapping, source_url=url, probe_values=True)


def test_a_column_type_without_a_documented_conversion_is_refused_at_check_time(db, postgres_source):
    import psycopg

    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE shapes (id integer PRIMARY KEY, at point)")

    with pytest.raises(MappingError) as error:
        plan_check(mapping={"rules": [_select("shapes")]}, source_url=postgres_source)

    assert "column 'at' has type 'point'" in error.value.message


# --- selection and filters ---------------------------------------------------------------------------

ITEMS_DDL = "CREATE TABLE items (id INTEGER PRIMARY KEY, color VARCHAR(10), size INTEGER)"
ITEM_ROWS = [{"id": n, "color": ["red", "blue", None][n % 3], "size": n % 7} for n in range(1, 101)]


def _filtered(filters):
    return {"rules": [_select("items", filters=filters)]}


def _condition(operator, *values):
    condition = {"filter-operator": operator}
    if len(values) == 1:
        condition["value"] = values[0]
    elif len(values) == 2:
        condition["start-value"], condition["end-value"] = values
    return condition


FILTER_CASES = [
    (
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("lte", "10")]}],
        lambda r: r["id"] <= 10,
    ),
    (
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("ste", "10")]}],
        lambda r: r["id"] <= 10,
    ),
    (
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("gte", "95")]}],
        lambda r: r["id"] >= 95,
    ),
    (
        [{"filter-type": "source", "column-name": "color", "filter-conditions": [_condition("eq", "red")]}],
        lambda r: r["color"] == "red",
    ),
    (
        [{"filter-type": "source", "column-name": "color", "filter-conditions": [_condition("noteq", "red")]}],
        lambda r: r["color"] is not None and r["color"] != "red",
    ),
    (
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("between", "20", "29")]}],
        lambda r: 20 <= r["id"] <= 29,
    ),
    (
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("notbetween", "2", "99")]}],
        lambda r: not 2 <= r["id"] <= 99,
    ),
    (
        [{"filter-type": "source", "column-name": "color", "filter-conditions": [_condition("null")]}],
        lambda r: r["color"] is None,
    ),
    (
        [{"filter-type": "source", "column-name": "color", "filter-conditions": [_condition("notnull")]}],
        lambda r: r["color"] is not None,
    ),
    (  # OR inside a filter, AND between filters
        [
            {
                "filter-type": "source",
                "column-name": "id",
                "filter-conditions": [_condition("lte", "10"), _condition("gte", "91")],
            },
            {"filter-type": "source", "column-name": "size", "filter-conditions": [_condition("eq", "3")]},
        ],
        lambda r: (r["id"] <= 10 or r["id"] >= 91) and r["size"] == 3,
    ),
]


@pytest.mark.parametrize(("filters", "keep"), FILTER_CASES)
def test_filters_select_exactly_the_rows_dms_would(db, dynamodb, make_source, filters, keep):
    url = make_source(ITEMS_DDL, {"items": ITEM_ROWS})

    plan, run = _migrate("filtered", _filtered(filters), url, segments=2)

    wanted = sorted(row["id"] for row in ITEM_ROWS if keep(row))
    assert run.status == "succeeded", run.last_error
    assert run.rows_read == len(wanted)
    assert sorted(item["id"] for item in _items("items")) == wanted
    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    assert report.counts[0]["source_rows"] == len(wanted)


def test_a_filtered_run_is_not_validated_against_the_unfiltered_source(db, dynamodb, sqlite_source):
    url = sqlite_source(ITEMS_DDL, {"items": ITEM_ROWS})
    mapping = _filtered(
        [{"filter-type": "source", "column-name": "id", "filter-conditions": [_condition("lte", "10")]}]
    )
    plan, run = _migrate("filtered", mapping, url)
    assert run.items_written == 10
    # rows written outside the filter are extra: the target must hold what the filter selects, no more
    dynamodb_put_item(table="items", item={"id": 50, "color": "red", "size": 1})

    report = plan_validate(plan=plan)

    assert report.extra == 1
    assert report.count_mismatches == 1


def test_a_negative_operator_must_be_alone_in_its_filter():
    from migration_app.services.mapping import mapping_parse

    filters = [
        {
            "filter-type": "source",
            "column-name": "id",
            "filter-conditions": [_condition("noteq", "1"), _condition("eq", "2")],
        }
    ]
    with pytest.raises(MappingError, match="only condition of its filter"):
        mapping_parse(document=_filtered(filters))


def test_every_selected_table_is_migrated_even_beside_other_object_mappings(db, dynamodb, make_source):
    url = make_source(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, color VARCHAR(10), size INTEGER);"
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(40))",
        {"items": ITEM_ROWS[:5], "notes": [{"id": 1, "body": "hello"}]},
    )
    mapping = {"rules": [_select("%"), _object("items", "Things", rule_name="items")]}

    plan, run = _migrate("both", mapping, url)

    assert run.status == "succeeded", run.last_error
    assert len(_items("Things")) == 5
    assert _items("notes") == [{"id": 1, "body": "hello"}]
    assert plan_validate(plan=plan).clean


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_table_names_are_case_sensitive(db, dynamodb, make_source, engine):
    quote = '"' if engine == "postgres" else "`"
    url = make_source(
        f"CREATE TABLE {quote}Mixed{quote} (id INTEGER PRIMARY KEY, v VARCHAR(5));"
        f"CREATE TABLE {quote}mixed{quote} (id INTEGER PRIMARY KEY, v VARCHAR(5))",
        {"Mixed": [{"id": 1, "v": "upper"}], "mixed": [{"id": 1, "v": "lower"}]},
    )

    plan, run = _migrate("mixed", {"rules": [_select("%")]}, url)

    assert run.status == "succeeded", run.last_error
    assert _items("Mixed") == [{"id": 1, "v": "upper"}]
    assert _items("mixed") == [{"id": 1, "v": "lower"}]
    only_upper = {"rules": [_select("Mixed")]}
    entities = plan_check(mapping=only_upper, source_url=url)
    assert [entity.table for entity in entities] == ["Mixed"]


def test_underscore_matches_exactly_one_character(db, sqlite_source):
    url = sqlite_source(
        "CREATE TABLE a_b (id INTEGER PRIMARY KEY); CREATE TABLE axb (id INTEGER PRIMARY KEY);"
        "CREATE TABLE axxb (id INTEGER PRIMARY KEY);"
    )

    entities = plan_check(mapping={"rules": [_select("a_b")]}, source_url=url)
    assert sorted(entity.table for entity in entities) == ["a_b", "axb"]
    exact = _select("a_b", action="explicit")
    exact["object-locator"]["schema-name"] = "main"
    explicit = plan_check(mapping={"rules": [exact]}, source_url=url)
    assert [entity.table for entity in explicit] == ["a_b"]  # explicit: the exact name, "_" included
    with pytest.raises(MappingError, match="explicit"):
        plan_check(mapping={"rules": [_select("a%b", action="explicit")]}, source_url=url)


# --- dynamodb-map leaves -----------------------------------------------------------------------------

FLAGS_DDL = "CREATE TABLE flags (id INTEGER PRIMARY KEY, flag BOOLEAN, score INTEGER, label VARCHAR(10))"


def test_dynamodb_map_leaves_keep_their_type_and_nulls_are_left_out(db, dynamodb, make_source):
    url = make_source(
        FLAGS_DDL,
        {
            "flags": [
                {"id": 1, "flag": True, "score": 7, "label": "a"},
                {"id": 2, "flag": False, "score": None, "label": None},
            ]
        },
    )
    info = {
        "M": {
            "flag": {"BOOL": "${flag}"},
            "score": {"N": "${score}"},
            "label": {"S": "${label}"},
            "nothing": {"NULL": True},
            "list": {"L": [{"N": "${id}"}, {"S": "x${label}"}]},
        }
    }
    mapping = {
        "rules": [
            _object(
                "flags",
                "Flags",
                **{
                    "exclude-columns": ["flag", "score", "label"],
                    "attribute-mappings": [
                        {
                            "target-attribute-name": "info",
                            "attribute-type": "document",
                            "attribute-sub-type": "dynamodb-map",
                            "value": info,
                        }
                    ],
                },
            )
        ]
    }

    _plan, run = _migrate("flags", mapping, url)

    assert run.status == "succeeded", run.last_error
    assert dynamodb_get_item(table="Flags", key={"id": 1})["info"] == {
        "flag": True,
        "score": 7,
        "label": "a",
        "nothing": None,
        "list": [1, "xa"],
    }
    assert dynamodb_get_item(table="Flags", key={"id": 2})["info"] == {
        "flag": False,
        "nothing": None,
        "list": [2, "x"],
    }


# --- binary keys and checkpoints ---------------------------------------------------------------------

BLOB_DDL = {
    "sqlite": "CREATE TABLE blobs (k BLOB PRIMARY KEY, v TEXT)",
    "postgres": "CREATE TABLE blobs (k bytea PRIMARY KEY, v text)",
    "duckdb": "CREATE TABLE blobs (k BLOB PRIMARY KEY, v VARCHAR)",
    "mariadb": "CREATE TABLE blobs (k VARBINARY(16) PRIMARY KEY, v VARCHAR(10))",
}
BLOB_ROWS = [{"k": bytes([n, 255 - n, 0]), "v": f"v{n}"} for n in range(40)]


def test_binary_keys_page_and_validate_end_to_end(db, dynamodb, make_source, settings):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 6
    url = make_source(BLOB_DDL, {"blobs": BLOB_ROWS})

    plan, run = _migrate("blobs", {"rules": [_select("blobs")]}, url, segments=2)

    assert run.status == "succeeded", run.last_error
    assert run.rows_read == 40
    assert sorted(item["k"] for item in _items("blobs")) == sorted(row["k"] for row in BLOB_ROWS)
    assert plan_validate(plan=plan).clean


def test_a_checkpoint_that_stops_advancing_stops_the_run(db, dynamodb, sqlite_source, settings, monkeypatch):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 6
    url = sqlite_source(BLOB_DDL["sqlite"], {"blobs": BLOB_ROWS})
    # the old checkpoint: a bytea key bound back as hex text, which every BLOB compares greater than
    monkeypatch.setattr(
        SqlSource, "_bind_key", lambda self, relation, values: [v.hex() if isinstance(v, bytes) else v for v in values]
    )

    _plan, run = _migrate("stuck", {"rules": [_select("blobs")]}, url)

    assert run.status == "failed"
    assert "did not advance" in run.last_error
    assert run.rows_read == 6


# --- bad rows ----------------------------------------------------------------------------------------

BIG_DDL = {
    "sqlite": "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
    "postgres": "CREATE TABLE docs (id integer PRIMARY KEY, body text)",
    "duckdb": "CREATE TABLE docs (id INTEGER PRIMARY KEY, body VARCHAR)",
    "mariadb": "CREATE TABLE docs (id INTEGER PRIMARY KEY, body LONGTEXT)",
}


def test_one_oversize_row_is_named_and_quarantined_not_a_silent_stop(db, dynamodb, make_source, settings):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    rows = [{"id": n, "body": "x" * (500_000 if n == 120 else 10)} for n in range(1, 201)]
    url = make_source(BIG_DDL, {"docs": rows})

    plan, run = _migrate("docs", {"rules": [_select("docs")]}, url)

    assert run.status == "failed"
    assert "source key {'id': 120}" in run.last_error
    assert "rule pick" in run.last_error
    assert "plan docs" in run.last_error
    assert "Nothing was written" not in run.last_error
    assert "400 KB" in run.last_error

    plan, run = _migrate("docs", {"rules": [_select("docs")]}, url, max_bad_rows=1)
    assert run.status == "succeeded", run.last_error
    assert run.items_written == 199
    (bad,) = QuarantinedRow.objects.filter(run=run)
    assert bad.source_key == {"id": 120}
    assert bad.rule == "pick"
    assert bad.target_table == "docs"
    report = plan_validate(plan=plan)
    assert report.missing == 1  # the quarantined row is not in DynamoDB, and validation says so


# --- timestamps --------------------------------------------------------------------------------------


def test_timestamps_have_one_fraction_width_so_sort_keys_sort_in_time_order(db, dynamodb, postgres_source):
    import psycopg

    moments = [
        dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 0, 0, 0, 500_000, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    ]
    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz)")
        for number, moment in enumerate(moments):
            connection.execute("INSERT INTO events VALUES (%s, %s)", [number, moment])
    mapping = {
        "rules": [
            _object(
                "events",
                "Events",
                **{
                    "partition-key-name": "PK",
                    "sort-key-name": "SK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "EVENTS"},
                        {"target-attribute-name": "SK", "attribute-type": "scalar", "value": "AT#${at}"},
                    ],
                },
            )
        ]
    }

    plan, _run = _migrate("events", mapping, postgres_source)

    keys = [item["SK"] for item in _items("Events")]
    assert sorted(keys) == [
        "AT#2025-01-01T00:00:00.000000Z",
        "AT#2025-01-01T00:00:00.500000Z",
        "AT#2025-01-01T00:00:01.000000Z",
    ]
    assert {item["at"] for item in _items("Events")} == {key[3:] for key in keys}
    assert plan_validate(plan=plan).clean


# --- validation that does not share the transform's blind spots --------------------------------------


def test_the_type_contract_catches_a_transform_bug_that_expected_vs_found_cannot(
    db, dynamodb, sqlite_source, monkeypatch
):
    from migration_app.services import mapping as mapping_module

    url = sqlite_source(FLAGS_DDL, {"flags": [{"id": 1, "flag": 1, "score": 5, "label": "a"}]})
    real = mapping_module.EntityMapping._transform

    def booleans_as_text(self, row):  # a mapping bug: BOOL written (and so also expected) as a string
        item = real(self, row)
        return {**item, "flag": str(item["flag"]).lower()} if "flag" in item else item

    monkeypatch.setattr(mapping_module.EntityMapping, "_transform", booleans_as_text)
    plan, run = _migrate("bug", {"rules": [_select("flags")]}, url)
    assert run.status == "succeeded"

    report = plan_validate(plan=plan)

    assert report.different == 0  # the transform expects what it wrote
    assert report.contract_violations == 1
    assert "column flag (BOOLEAN) must be BOOL in DynamoDB, found S" in report.samples["contract"][0]["problems"]
    assert not report.clean


def test_cutover_needs_a_full_validation_newer_than_the_last_write(db, dynamodb, sqlite_source):
    url = sqlite_source(ITEMS_DDL, {"items": ITEM_ROWS[:5]})
    plan, _run = _migrate("guard", {"rules": [_select("items")]}, url)
    plan.phase = Phase.VALIDATE
    plan.save()

    assert plan_validate(plan=plan, mode="quick").clean
    with pytest.raises(PhaseGuardFailed, match="is quick"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)

    plan_validate(plan=plan, mode="full")
    phase_guard(plan=plan, to_phase=Phase.CUTOVER)  # allowed now


def test_the_quarantine_is_visible_in_the_admin_and_exports_as_json_lines(
    db, dynamodb, sqlite_source, ops_admin_client, settings
):
    import json

    from django.core.management import call_command

    url = sqlite_source(BIG_DDL["sqlite"], {"docs": [{"id": 1, "body": "ok"}, {"id": 2, "body": "x" * 500_000}]})
    plan, run = _migrate("docs", {"rules": [_select("docs")]}, url, max_bad_rows=1)
    assert run.status == "succeeded"
    assert run.rows_quarantined == 1

    listing = ops_admin_client.get("/admin/migration_app/quarantinedrow/")
    assert listing.status_code == 200
    assert "400 KB" in listing.content.decode()
    exported = ops_admin_client.post(
        "/admin/migration_app/quarantinedrow/",
        {"action": "export_jsonl", "_selected_action": [row.pk for row in QuarantinedRow.objects.all()]},
    )
    (line,) = exported.content.decode().splitlines()
    entry = json.loads(line)
    assert (entry["plan"], entry["rule"], entry["source_key"]) == ("docs", "pick", {"id": 2})
    assert entry["row"]["body"].endswith("…")  # a 500 KB value is not copied whole

    from io import StringIO

    out = StringIO()
    call_command("migration_quarantine", "docs", stdout=out)
    assert json.loads(out.getvalue())["source_key"] == {"id": 2}


# --- every source type: a documented conversion ------------------------------------------------------

PG_TYPES_DDL = """
CREATE TYPE mood AS ENUM ('calm', 'angry');
CREATE TABLE typed (id integer PRIMARY KEY, price money, wait interval, addr inet, net cidr, span int4range,
  during tstzrange, feeling mood, feelings mood[], at time, atz timetz, day date, stamps timestamptz[],
  amounts numeric[], flags boolean[], doc jsonb, raw bytea)
"""


def test_postgresql_types_each_have_their_documented_conversion(db, dynamodb, postgres_source):
    import psycopg

    with psycopg.connect(postgres_source) as connection:
        connection.execute(PG_TYPES_DDL)
        connection.execute(
            "INSERT INTO typed VALUES (1, '12.34', '1 year 2 mons 3 days 04:05:06.5', '192.168.0.1', '10.0.0.0/8', "
            "'[1,10)', '[2025-01-01 00:00:00+00,2025-01-02 00:00:00+00)', 'calm', '{calm,angry}', '10:11:12.5', "
            "'10:11:12+02', '2025-03-04', '{2025-01-01 00:00:00+00}', '{1.50,12345678901234567890123456789012345678}',"
            " '{true,false}', '{\"n\": 1.10, \"deep\": {\"x\": [1, 2.5]}}', '\\x00ff')"
        )

    plan, run = _migrate("pgtypes", {"rules": [_select("typed")]}, postgres_source)

    assert run.status == "succeeded", run.last_error
    item = dynamodb_get_item(table="typed", key={"id": 1}, consistent=True)
    assert item["price"] == Decimal("12.34")
    assert item["wait"] == "1 year 2 mons 3 days 04:05:06.5"
    assert item["addr"] == "192.168.0.1"
    assert item["net"] == "10.0.0.0/8"
    assert item["span"] == "[1,10)"
    assert item["during"] == '["2025-01-01 00:00:00+00","2025-01-02 00:00:00+00")'
    assert item["feeling"] == "calm"
    assert item["feelings"] == ["calm", "angry"]
    assert item["at"] == "10:11:12.500000"
    assert item["atz"] == "10:11:12.000000+02:00"
    assert item["day"] == "2025-03-04"
    assert item["stamps"] == ["2025-01-01T00:00:00.000000Z"]
    assert item["amounts"] == [Decimal("1.5"), Decimal("12345678901234567890123456789012345678")]
    assert item["flags"] == [True, False]
    assert item["doc"] == {"n": Decimal("1.1"), "deep": {"x": [1, Decimal("2.5")]}}
    assert item["raw"] == b"\x00\xff"
    assert plan_validate(plan=plan).clean


MARIADB_TYPES_DDL = """
CREATE TABLE typed (id BIGINT UNSIGNED PRIMARY KEY, ok TINYINT(1), bit1 BIT(1), price DECIMAL(38,2), ratio DOUBLE,
  at DATETIME(6), stamp TIMESTAMP(6) NULL, day DATE, span TIME(6), doc JSON, raw BLOB, kind ENUM('a','b'),
  tags SET('x','y'), year YEAR, note VARCHAR(20))
"""


def test_mariadb_types_each_have_their_documented_conversion(db, dynamodb, mariadb_source):
    from urllib.parse import urlparse

    import pymysql

    parsed = urlparse(mariadb_source)
    connection = pymysql.connect(host=parsed.hostname, port=parsed.port, user="root", database=parsed.path[1:])
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        cursor.execute(MARIADB_TYPES_DDL)
        cursor.execute(
            "INSERT INTO typed VALUES (18446744073709551615, 1, b'1', 123456789012345678901234567890123456.78, 0.1, "
            "'2025-01-01 10:00:00.000001', '2025-01-01 10:00:00', '2025-03-04', '-01:02:03.5', "
            "'{\"n\": 1.10, \"a\": [1, true]}', x'00ff', 'b', 'x,y', 2025, NULL)"
        )
    connection.commit()
    connection.close()

    plan, run = _migrate("mytypes", {"rules": [_select("typed")]}, mariadb_source)

    assert run.status == "succeeded", run.last_error
    item = dynamodb_get_item(table="typed", key={"id": 18446744073709551615}, consistent=True)
    assert item["ok"] is True
    assert item["bit1"] is True
    assert item["price"] == Decimal("123456789012345678901234567890123456.78")
    assert item["ratio"] == Decimal("0.1")
    assert item["at"] == "2025-01-01T10:00:00.000001Z"
    assert item["stamp"] == "2025-01-01T10:00:00.000000Z"
    assert item["day"] == "2025-03-04"
    assert item["span"] == "-P0DT1H2M3.500000S"
    assert item["doc"] == {"n": Decimal("1.1"), "a": [1, True]}
    assert item["raw"] == b"\x00\xff"
    assert item["kind"] == "b"
    assert item["tags"] == "x,y"
    assert item["year"] == 2025
    assert "note" not in item  # NULL: not written (DMS)
    assert plan_validate(plan=plan).clean


def test_migrate_check_refuses_an_unexact_value_naming_the_column(db, postgres_source, tmp_path):
    import json

    import psycopg
    from django.core.management import CommandError, call_command

    with psycopg.connect(postgres_source) as connection:
        connection.execute("CREATE TABLE ledger (id integer PRIMARY KEY, total numeric)")
        connection.execute("INSERT INTO ledger VALUES (1, 1e-200)")
    mapping = tmp_path / "ledger.json"
    mapping.write_text(json.dumps({"rules": [_select("ledger")]}))

    with pytest.raises(CommandError, match="column 'total'"):
        call_command("migrate_to_dynamodb", "--mapping", str(mapping), "--source", postgres_source, "--check")


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d.is_zero() or (len(d.as_tuple().digits) <= 38 and -130 <= d.adjusted() <= 125)
    ),
    st.integers(0, 5),
)
@hypothesis_settings(max_examples=300, deadline=None)
def test_canonical_numbers_are_exact_and_ignore_only_trailing_zeros(number, zeros):
    from migration_app.services.canonical import canonical_number

    text = canonical_number(str(number))
    assert Decimal(text) == number  # exact: no digit lost or changed
    padded = Decimal(str(number) + ("0" * zeros if "." in str(number) and "E" not in str(number) else ""))
    assert canonical_number(str(padded)) == text
    unit = Decimal((0, (1,), number.as_tuple().exponent))  # one unit in the last place
    bumped = decimal.Context(prec=200).add(number, unit)  # exact: the default 28-digit context would round
    assert canonical_number(str(bumped)) != text
