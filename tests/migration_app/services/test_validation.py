"""Validation catches what differs, with field-level diffs, and ignores expired TTL items."""

import time

from lizzy.dynamodb import dynamodb_delete_item, dynamodb_put_item, dynamodb_update_item
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


def _migrated(sqlite_source, rows, mapping=None, name="things"):
    source = sqlite_source(THINGS_DDL, {"things": rows})
    plan = plan_save(name=name, source_url=source, mapping=mapping or things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    return plan


def test_one_modified_one_missing_one_extra_are_each_reported(db, dynamodb, sqlite_source):
    plan = _migrated(sqlite_source, things_rows(20))
    dynamodb_update_item(
        table="Things", key={"PK": "THING#3"}, update="SET #n = :n", names={"#n": "name"}, values={":n": "tampered"}
    )
    dynamodb_delete_item(table="Things", key={"PK": "THING#7"})
    dynamodb_put_item(table="Things", item={"PK": "THING#999", "name": "stray"})

    report = plan_validate(plan=plan)

    assert report.summary() == {
        "missing": 1,
        "extra": 1,
        "different": 1,
        "count_mismatches": 0,  # one item gone, one stray: the count alone cannot see it
        "contract_violations": 0,
    }
    assert not report.clean
    assert report.samples["different"][0]["fields"] == [
        {"field": "name", "expected": {"S": "thing 3"}, "actual": {"S": "tampered"}}
    ]
    assert report.samples["missing"][0]["key"] == '{"PK":{"S":"THING#7"}}'
    assert report.samples["extra"][0]["key"] == '{"PK":{"S":"THING#999"}}'


def test_quick_mode_compares_keys_only(db, dynamodb, sqlite_source):
    plan = _migrated(sqlite_source, things_rows(5))
    dynamodb_update_item(
        table="Things", key={"PK": "THING#3"}, update="SET #n = :n", names={"#n": "name"}, values={":n": "tampered"}
    )

    assert plan_validate(plan=plan, mode="quick").clean
    assert plan_validate(plan=plan, mode="full").different == 1


def test_expired_items_count_as_absent_on_both_sides(db, dynamodb, sqlite_source):
    # given rows whose ttl (from updated_at + 0) is long past, migrated
    mapping = things_mapping(ttl="${epoch(updated_at)}")
    plan = _migrated(sqlite_source, things_rows(3), mapping=mapping, name="expiring")
    # and a stray expired item in the target, which DynamoDB has not deleted yet
    dynamodb_put_item(table="Things", item={"PK": "THING#old", "ttl": int(time.time()) - 10})

    report = plan_validate(plan=plan)

    assert report.clean
    assert report.expected == 0
    assert report.expired_ignored == 4
