"""The key ledger: compact entries that tell item keys apart as DynamoDB does, one ledger per work unit."""

import threading
from decimal import Decimal

import pytest

from lizzy.dynamodb import dynamodb_get_item
from migration_app.models import QuarantinedRow, RunStatus
from migration_app.services import runs
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from migration_app.services.writer import KeyLedger
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

BIG = 10**37  # 38 digits: beyond Decimal's default 28-digit context, within DynamoDB's 38


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((1,), (Decimal("1.0"),)),  # one DynamoDB number
        ((100,), (Decimal("1E+2"),)),
        ((Decimal("0.00"),), (Decimal("-0"),)),
        ((BIG + 1,), (Decimal(BIG + 1),)),
        (("a", 1), ("a", Decimal("1.00"))),
    ],
)
def test_keys_dynamodb_takes_for_one_collide(first, second):
    ledger = KeyLedger()
    assert ledger.claim("T", first, [1]) is None

    assert ledger.claim("T", second, [2]) == [1]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("1",), (1,)),  # S and N
        (("1",), (b"1",)),  # S and B
        ((BIG + 1,), (BIG + 2,)),  # differ in the 38th digit only
        ((Decimal("1.5"),), (Decimal("15"),)),
        (("ab", "c"), ("a", "bc")),  # composite keys: no concatenation ambiguity
        (("a\udcff",), ("a",)),  # a lone surrogate (a source's undecodable text) is still a distinct key
    ],
)
def test_keys_dynamodb_tells_apart_do_not_collide(first, second):
    ledger = KeyLedger()
    assert ledger.claim("T", first, [1]) is None

    assert ledger.claim("T", second, [2]) is None
    assert len(ledger) == 2


def test_a_key_in_two_tables_is_two_keys():
    ledger = KeyLedger()
    assert ledger.claim("A", ("k",), [1]) is None

    assert ledger.claim("B", ("k",), [2]) is None


def test_the_same_source_row_claiming_again_is_not_a_collision_and_composite_owners_come_back_whole():
    # given a unit retried from its checkpoint: the same rows claim their keys a second time
    ledger = KeyLedger()
    assert ledger.claim("T", ("k",), ["r0", 1]) is None
    assert ledger.claim("T", ("k",), ["r0", 1]) is None
    assert ledger.claim("T", ("n",), [None]) is None
    assert ledger.claim("T", ("n",), [None]) is None

    # then another row is told the first one's whole composite key
    assert ledger.claim("T", ("k",), ["r0", 2]) == ["r0", 1]
    assert ledger.claim("T", ("n",), [7]) == [None]


def _plan(sqlite_source, rows, name="dupes"):
    source = sqlite_source(THINGS_DDL, {"things": rows})
    mapping = things_mapping()
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${name}"
    plan = plan_save(name=name, source_url=source, mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def test_a_collision_between_pages_of_one_unit_names_both_source_keys(db, dynamodb, sqlite_source, settings):
    # given rows 2 and 29 giving one item key, in different pages of one unit, pages pipelined
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 5
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    rows = things_rows(30)
    rows[28]["name"] = rows[1]["name"]
    plan = _plan(sqlite_source, rows)

    with plan_context(plan=plan) as context:
        run = run_execute(run=run_create(context=context), context=context)

    assert run.segments.count() == 1
    assert run.status == RunStatus.FAILED
    assert "{'id': 2} (written first) and {'id': 29}" in run.last_error
    assert list(QuarantinedRow.objects.filter(run=run).values_list("source_key", flat=True)) == [{"id": 29}]


def test_a_collision_across_two_units_is_not_in_either_ledger_and_validation_reports_it(db, dynamodb, sqlite_source):
    # given rows 2 and 9 giving one item key, in two units of 5 rows
    rows = things_rows(10)
    rows[8]["name"] = rows[1]["name"]
    plan = _plan(sqlite_source, rows)

    # when the run copies them (one thread: the units one after the other, in one process)
    with plan_context(plan=plan) as context:
        run = run_execute(run=run_create(context=context, segments=2), context=context)

    # then each unit's ledger saw one of the rows: the run succeeds, 10 rows read, 9 items in the table
    assert run.status == RunStatus.SUCCEEDED, run.last_error
    assert [unit.rows_read for unit in run.segments.order_by("index")][:2] == [5, 5]
    assert run.items_written == 10
    # and validation's count reconciliation reports the lost row: unclean, so the cutover guard refuses
    report = plan_validate(plan=plan)
    assert not report.clean
    assert report.count_mismatches == 1
    assert (report.samples["counts"][0]["source_rows"], report.samples["counts"][0]["target_items"]) == (10, 9)


def test_each_unit_has_its_own_ledger_holding_at_most_its_rows(db, dynamodb, sqlite_source, settings, monkeypatch):
    # given 230 rows in units of 50 (the memory bound: a ledger's entries are its unit's keys)
    settings.LIZZY_MIGRATION_UNIT_ROWS = 50
    ledgers = []

    class Recorded(KeyLedger):
        def __init__(self) -> None:
            super().__init__()
            ledgers.append(self)

    monkeypatch.setattr(runs, "KeyLedger", Recorded)
    plan = _plan(sqlite_source, things_rows(230), name="bounded")

    with plan_context(plan=plan) as context:
        run = run_execute(run=run_create(context=context), context=context)

    assert run.status == RunStatus.SUCCEEDED, run.last_error
    assert sorted(len(ledger) for ledger in ledgers) == [30, 50, 50, 50, 50]


def test_last_wins_across_pages_of_a_unit_leaves_the_later_row_however_the_calls_interleave(
    db, dynamodb, sqlite_source, settings
):
    # given rows 2 and 29 giving one item key in pages 1 and 6 of one unit, 4 calls in flight, and an endpoint
    # that holds the call carrying row 2 until the call carrying row 29 arrives (at most a second)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 5
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    rows = things_rows(30)
    rows[28]["name"] = rows[1]["name"]
    source = sqlite_source(THINGS_DDL, {"things": rows})
    mapping = things_mapping(**{"key-collisions": "last-wins"})
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${name}"
    plan = plan_save(name="later", source_url=source, mapping=mapping)
    later_sent = threading.Event()
    order = []

    def hold_the_earlier_row(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ids = {request["PutRequest"]["Item"]["id"]["N"] for request in next(iter(params["RequestItems"].values()))}
        if "29" in ids:
            order.append("later sent")
            later_sent.set()
        if "2" in ids:
            later_sent.wait(timeout=1)
            order.append("earlier sent")
        return send(params)

    with fault_injection(hold_the_earlier_row), plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)

    # then the later row is the item, its page having been sent after the earlier one was accepted
    assert run.status == RunStatus.SUCCEEDED, run.last_error
    assert order == ["earlier sent", "later sent"]
    assert dynamodb_get_item(table="Things", key={"PK": "THING#thing 2"})["id"] == 29
    assert run.items_written == 30  # row 2 was written, then overwritten
