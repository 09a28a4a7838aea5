"""Validation catches what differs, with field-level diffs, and ignores expired TTL items."""

import time
import uuid

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lizzy.dynamodb import dynamodb_delete_item, dynamodb_put_item, dynamodb_update_item
from migration_app.models import ValidationReport
from migration_app.services.dispatch import plan_validate_dispatch
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate, validation_parts
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


def _migrated(sqlite_source, rows, mapping=None, name="things"):
    source = sqlite_source(THINGS_DDL, {"things": rows}, name=f"{name}.sqlite3")
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
        "in_flight": 0,  # no CDC stream: nothing is followed, a difference is one
        "unsettled": 0,
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


@hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    buckets=st.sampled_from([1, 3, 16]),
    max_keys=st.sampled_from([5, 40, 10_000]),
    changes=st.lists(st.tuples(st.sampled_from(["tamper", "delete", "stray"]), st.integers(1, 60)), max_size=12),
)
def test_bounded_memory_validation_counts_every_difference_whatever_the_buckets_and_rounds(
    db, dynamodb, sqlite_source, settings, buckets, max_keys, changes
):
    # given a migrated table changed behind the engine's back (an independent record of what changed)
    settings.LIZZY_VALIDATION_BUCKETS = buckets
    settings.LIZZY_VALIDATION_MAX_KEYS = max_keys  # small: the details of differing buckets take rounds
    settings.LIZZY_VALIDATION_RANGE_ROWS = 7  # the source side in many parts
    name = f"things-{uuid.uuid4().hex[:6]}"
    table = f"Things-{name}"
    plan = _migrated(sqlite_source, things_rows(60), mapping=things_mapping(table=table), name=name)
    tampered, deleted, strays = set(), set(), set()
    for change, number in changes:
        if change == "tamper" and number not in deleted:
            dynamodb_update_item(
                table=table, key={"PK": f"THING#{number}"}, update="SET #n = :n", names={"#n": "name"},
                values={":n": "tampered"},
            )  # fmt: skip
            tampered.add(number)
        elif change == "delete":
            dynamodb_delete_item(table=table, key={"PK": f"THING#{number}"})
            deleted.add(number)
            tampered.discard(number)
        elif change == "stray":
            dynamodb_put_item(table=table, item={"PK": f"STRAY#{number}", "name": "stray"})
            strays.add(number)

    # when it is validated with few buckets and small rounds
    report = plan_validate(plan=plan)

    # then every difference is counted exactly once
    assert (report.missing, report.different, report.extra) == (len(deleted), len(tampered), len(strays))
    assert report.expected == 60
    assert report.found == 60 - len(deleted) + len(strays)
    assert report.clean == (not (deleted or tampered or strays))


def test_distributed_validation_as_celery_tasks_gives_the_same_report(db, dynamodb, sqlite_source, settings):
    # given a migrated table with one of each difference, validated in many parts (eager Celery in tests)
    settings.LIZZY_VALIDATION_RANGE_ROWS = 6
    plan = _migrated(sqlite_source, things_rows(20))
    dynamodb_update_item(
        table="Things", key={"PK": "THING#3"}, update="SET #n = :n", names={"#n": "name"}, values={":n": "tampered"}
    )
    dynamodb_delete_item(table="Things", key={"PK": "THING#7"})
    dynamodb_put_item(table="Things", item={"PK": "THING#999", "name": "stray"})

    # when it is validated by Celery tasks (4 Scan segments, 4 source ranges) and in one process
    with plan_context(plan=plan) as context:
        specs = validation_parts(context=context)
    report_id = plan_validate_dispatch(plan=plan).get()
    distributed = ValidationReport.objects.get(pk=report_id)
    local = plan_validate(plan=plan)

    # then one merged report, the same as the local one
    assert [spec["side"] for spec in specs].count("source") == 4
    assert (
        distributed.summary()
        == local.summary()
        == {
            "missing": 1,
            "extra": 1,
            "different": 1,
            "count_mismatches": 0,
            "contract_violations": 0,
            "in_flight": 0,
            "unsettled": 0,
        }
    )
    assert (distributed.expected, distributed.found) == (local.expected, local.found) == (20, 20)
