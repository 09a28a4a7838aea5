"""Issue 12 review, second round: backups of every DynamoDB type, validation against hand edits it must
see, binary composite keys over several segments, source names DynamoDB cannot take, quick labels."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lizzy.dynamodb import dynamodb_get_item, dynamodb_put_item, dynamodb_scan_segment
from migration_app.models import QuarantinedRow
from migration_app.services.backups import backup_restore, backup_table
from migration_app.services.mapping import MappingError
from migration_app.services.plans import plan_save
from migration_app.services.validation import plan_validate
from tests.migration_app.review12.test_probes import _migrate, _select

pytestmark = pytest.mark.django_db

BIG = Decimal("-" + "9" * 38)
TINY = Decimal("1.234567890123456789012345678901234567E-128")  # 37 digits near DynamoDB's smallest, 1E-130


def _items(table):
    return list(dynamodb_scan_segment(table=table, consistent=True))


def test_a_backup_restores_every_dynamodb_type_exactly(db, dynamodb):
    from lizzy.tables import TableSpec, table_ensure

    table_ensure(spec=TableSpec(base_name="Kinds", partition_key=("PK", "S")), name="Kinds")
    item = {
        "PK": "k#1",
        "big": BIG,
        "tiny": TINY,
        "zero": Decimal("0"),
        "nested": {"list": [BIG, True, None, b"\x00\xff", "", {"deep": Decimal("1E+125")}], "empty": {}},
        "bytes": b"\x00\x01\xfe",
        "flag": False,
        "nothing": None,
        "empty": "",
        "ünïcode ключ": "värde",
        "numbers": {Decimal("1"), Decimal("12345678901234567890123456789012345678")},
        "strings": {"a", "b"},
        "binaries": {b"\x01", b"\x02"},
    }
    dynamodb_put_item(table="Kinds", item=item)
    before = dynamodb_get_item(table="Kinds", key={"PK": "k#1"}, consistent=True)
    backup = backup_table(table="Kinds")
    dynamodb_put_item(table="Kinds", item={"PK": "k#1", "big": 1})
    result = backup_restore(backup=backup)
    after = dynamodb_get_item(table="Kinds", key={"PK": "k#1"}, consistent=True)
    assert result["verified"]
    assert after == before


@pytest.mark.parametrize(
    "value",
    [Decimal("1E-131"), Decimal("-9.9E-131"), Decimal("1E+126"), -(10**126), 10**38 + 1],
)
def test_a_number_the_writer_cannot_encode_is_refused_by_the_transform_too(value):
    from lizzy.dynamodb.codec import serialize_checked
    from lizzy.dynamodb.errors import CodecError
    from migration_app.services.types import ValueRefused, storable

    with pytest.raises(CodecError):
        serialize_checked({"PK": "x", "n": value})
    with pytest.raises(ValueRefused):
        storable(value, "n")


@pytest.mark.parametrize(
    "value",
    # DynamoDB takes them (38 digits from 1E-130; trailing zeros trimmed); boto3's decimal context does not
    [
        Decimal("1.234567890123456789012345678901234567E-130"),
        Decimal("1.2345678901234567890123456789012345678E-129"),
        10**40,
    ],
)
def test_a_number_dynamodb_takes_is_taken_by_the_writer_and_the_transform(value):
    from lizzy.dynamodb.codec import serialize_checked
    from migration_app.services.types import storable

    assert Decimal(serialize_checked({"PK": "x", "n": value})[0]["n"]["N"]) == value
    assert storable(value, "n") == value


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda item: {**item, "qty": str(item["qty"])}, "N became S"),
        (lambda item: {**item, "flag": 1}, "BOOL became N"),
        (lambda item: {**item, "extra": "planted"}, "an attribute the source does not have"),
        (lambda item: {**item, "note": None}, "a NULL where the source column is NULL (DMS writes nothing)"),
        (lambda item: {k: v for k, v in item.items() if k != "qty"}, "an attribute missing"),
        (lambda item: {**item, "name": item["name"] + " "}, "a trailing space"),
        (lambda item: {**item, "name": item["name"].upper()}, "case"),
    ],
)
def test_validation_sees_every_hand_edit_of_an_item(db, dynamodb, sqlite_source, edit, why):
    url = sqlite_source(
        "CREATE TABLE goods (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, flag BOOLEAN, note TEXT)",
        {"goods": [{"id": n, "name": f"Good {n}", "qty": n, "flag": n % 2, "note": None} for n in range(1, 6)]},
    )
    plan, run = _migrate("edits", {"rules": [_select("goods")]}, url)
    assert run.status == "succeeded", run.last_error
    assert plan_validate(plan=plan).clean
    item = dynamodb_get_item(table="goods", key={"id": 3}, consistent=True)
    dynamodb_put_item(table="goods", item=edit(item))
    report = plan_validate(plan=plan)
    assert not report.clean, why


@pytest.mark.parametrize("engine", ["postgres", "duckdb", "mariadb", "sqlite"])
def test_binary_composite_keys_page_across_segments_without_loss(db, dynamodb, make_source, engine, settings):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 7
    blob = {"postgres": "bytea", "duckdb": "BLOB", "mariadb": "VARBINARY(16)", "sqlite": "BLOB"}[engine]
    ddl = f"CREATE TABLE binkeys (k {blob} NOT NULL, n INTEGER NOT NULL, v VARCHAR(10), PRIMARY KEY (k, n))"
    rows = [{"k": bytes([n % 5, 0, 255 - n % 3]), "n": n, "v": f"v{n}"} for n in range(90)]
    url = make_source(ddl, {"binkeys": rows})
    plan, run = _migrate("binkeys", {"rules": [_select("binkeys")]}, url, segments=3)
    assert run.status == "succeeded", run.last_error
    assert run.rows_read == 90
    assert sorted((bytes(i["k"]), int(i["n"])) for i in _items("binkeys")) == sorted((r["k"], r["n"]) for r in rows)
    assert plan_validate(plan=plan).clean


@pytest.mark.parametrize("name", ["Bestellungen ä", "ab", "x" * 256, "order items"])
def test_a_source_table_name_dynamodb_cannot_take_is_refused_before_anything_is_written(
    db, dynamodb, sqlite_source, name
):
    quoted = '"' + name.replace('"', '""') + '"'
    url = sqlite_source(f"CREATE TABLE {quoted} (id INTEGER PRIMARY KEY)", {name: [{"id": 1}]})
    with pytest.raises(MappingError) as caught:
        plan_save(name="badname", source_url=url, mapping={"rules": [_select("%")]})
    assert "target-table-name" in caught.value.message or "table name" in caught.value.message


def test_a_quick_validation_is_labelled_quick_in_the_api_and_the_admin(db, dynamodb, sqlite_source, api_client):
    url = sqlite_source("CREATE TABLE quick (id INTEGER PRIMARY KEY)", {"quick": [{"id": n} for n in range(1, 4)]})
    plan, run = _migrate("quick", {"rules": [_select("quick")]}, url)
    plan_validate(plan=plan, mode="quick")
    body = api_client.get(f"/api/v1/migrations/plans/{plan.name}/").json()
    assert body["latest_validation"]["quick"] is True


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "duckdb"])
def test_a_filter_on_a_mixed_case_column_with_a_quote_in_its_value(db, dynamodb, make_source, engine):
    quote = "`" if engine == "mariadb" else '"'
    ddl = f"CREATE TABLE names (id INTEGER PRIMARY KEY, {quote}LastName{quote} VARCHAR(20))"
    rows = [{"id": 1, "LastName": "O'Brien"}, {"id": 2, "LastName": "Smith"}, {"id": 3, "LastName": "o'brien"}]
    url = make_source(ddl, {"names": rows})
    condition = {"filter-operator": "eq", "value": "O'Brien"}
    selection = _select(
        "names", filters=[{"filter-type": "source", "column-name": "LastName", "filter-conditions": [condition]}]
    )
    plan, run = _migrate("quotes", {"rules": [selection]}, url)
    assert run.status == "succeeded", run.last_error
    expected = [1, 3] if engine == "mariadb" else [1]  # MariaDB's default collation is case-insensitive
    assert sorted(int(item["id"]) for item in _items("names")) == expected
    report = plan_validate(plan=plan)
    assert report.clean
    assert report.counts[0]["source_rows"] == len(expected)


def test_a_json_number_with_an_exponent_migrates_and_validates(db, dynamodb, sqlite_source):
    # "1e40" is Decimal('1E+40') from the source, "1E+40" in DynamoDB, and the int 10**40 when read back
    docs = [{"id": 1, "doc": '{"n": 1e40, "m": [1e125, -1e-130]}'}, {"id": 2, "doc": '{"n": 1.5}'}]
    url = sqlite_source("CREATE TABLE jexp (id INTEGER PRIMARY KEY, doc JSON)", {"jexp": docs})
    plan, run = _migrate("jexp", {"rules": [_select("jexp")]}, url)
    assert run.status == "succeeded", run.last_error
    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    backup = backup_table(table="jexp")
    assert backup_restore(backup=backup)["verified"]


def test_the_codec_refuses_a_number_below_dynamodbs_range():
    from lizzy.dynamodb.codec import serialize_checked
    from lizzy.dynamodb.errors import CodecError

    with pytest.raises(
        CodecError, match=r"1E-131 cannot be stored in DynamoDB: magnitude below 1E-130 \(attribute n\)"
    ):
        serialize_checked({"PK": "x", "n": Decimal("1E-131")})


@pytest.mark.parametrize("engine", ["postgres"])
def test_numbers_dynamodb_refuses_are_quarantined_by_key_naming_table_and_column(db, dynamodb, make_source):
    url = make_source(
        "CREATE TABLE amounts (id integer PRIMARY KEY, amount numeric); "
        "INSERT INTO amounts VALUES (1, 1.5), (2, 1E-131), (3, 1E+126), (4, 1E-130), "
        "(5, 12345678901234567890123456789012345678.9)",
        {},
    )
    _plan, run = _migrate("amounts", {"rules": [_select("amounts")]}, url, max_bad_rows=3)
    assert run.status == "succeeded", run.last_error
    bad = {row.source_key["id"]: row for row in QuarantinedRow.objects.filter(run=run)}
    assert sorted(bad) == [2, 3, 5]
    for row in bad.values():
        assert row.source_table.endswith("amounts")
        assert "amount" in row.reason, row.reason
    assert bad[2].reason == "Number 1E-131 cannot be stored in DynamoDB: magnitude below 1E-130 (attribute amount)."
    assert {int(item["id"]): item["amount"] for item in _items("amounts")} == {
        1: Decimal("1.5"),
        4: Decimal("1E-130"),
    }


@pytest.mark.parametrize("engine", ["postgres"])
def test_a_refused_number_without_a_bad_row_allowance_fails_the_run_naming_table_column_and_key(
    db, dynamodb, make_source
):
    url = make_source(
        "CREATE TABLE amounts (id integer PRIMARY KEY, amount numeric); INSERT INTO amounts VALUES (1, 1), (2, 1E-131)",
        {},
    )
    _plan, run = _migrate("amounts0", {"rules": [_select("amounts")]}, url)
    assert run.status == "failed"
    assert run.last_error.endswith(
        "plan amounts0, table public.amounts, rule pick, source key {'id': 2}: "
        "Number 1E-131 cannot be stored in DynamoDB: magnitude below 1E-130 (attribute amount)."
    ), run.last_error
