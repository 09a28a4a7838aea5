"""Backfill: segments and checkpoints, faults retried, duplicates reported, --limit honoured."""

import random

import pytest

from lizzy.cost import capacity_flush
from lizzy.dynamodb import dynamodb_get_item, dynamodb_scan_segment
from migration_app.models import QuarantinedRow, Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute, segment_backfill
from migration_app.services.validation import plan_validate
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def things_plan(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(230)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def test_segments_split_the_key_range_and_validate_clean(things_plan):
    with plan_context(plan=things_plan) as context:
        run = run_execute(run=run_create(context=context, segments=4), context=context)

    segments = list(run.segments.order_by("index"))
    assert len(segments) == 4
    assert sum(segment.rows_read for segment in segments) == 230
    assert all(segment.done for segment in segments)
    assert run.rows_read == 230
    assert run.items_written == 230
    report = plan_validate(plan=things_plan)
    assert report.clean
    assert report.expected == 230


def test_segment_resumes_from_its_checkpoint(things_plan):
    # given a segment whose checkpoint says 100 rows were written already
    with plan_context(plan=things_plan) as context:
        run = run_create(context=context)
    Segment.objects.filter(run=run).update(last_key=[100], rows_read=100)

    # when it runs again
    segment = segment_backfill(segment_id=run.segments.get().pk)

    # then only the rows after the checkpoint are read
    assert segment.rows_read == 230
    written = {item["PK"] for item in dynamodb_scan_segment(table="Things")}
    assert written == {f"THING#{n}" for n in range(101, 231)}


def _flaky(unprocessed_share: float, throttle_every: int):
    """Every ``throttle_every``-th call is throttled; a share of first-time requests comes back unprocessed."""
    rng = random.Random(7)
    calls = {"n": 0, "held": 0, "sent": 0}
    seen: set[str] = set()

    def hook(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        calls["n"] += 1
        if calls["n"] % throttle_every == 0:
            raise client_error("ProvisionedThroughputExceededException", "slow down", operation)
        ((table, requests),) = params["RequestItems"].items()
        held = [r for r in requests if repr(r) not in seen and rng.random() < unprocessed_share]
        kept = [r for r in requests if r not in held]
        seen.update(repr(r) for r in requests)
        calls["held"] += len(held)
        calls["sent"] += len(requests)
        response = send({**params, "RequestItems": {table: kept}}) if kept else {}
        return {**response, "UnprocessedItems": {table: held} if held else {}}

    hook.calls = calls
    return hook


def test_unprocessed_items_and_throttling_are_retried_until_validation_is_clean(things_plan):
    hook = _flaky(unprocessed_share=0.4, throttle_every=3)
    with fault_injection(hook), plan_context(plan=things_plan) as context:
        run = run_execute(run=run_create(context=context), context=context)

    assert hook.calls["held"] / 230 >= 0.3  # at least 30 % of the items came back unprocessed once

    assert run.status == "succeeded", run.last_error
    assert run.unprocessed_retries > 0
    assert run.throttle_retries > 0
    assert run.items_written == 230
    assert plan_validate(plan=things_plan).clean


def _colliding_plan(sqlite_source, **rule_extra):
    rows = things_rows(4)
    rows[2]["name"] = rows[1]["name"]
    source = sqlite_source(THINGS_DDL, {"things": rows})
    mapping = things_mapping(**rule_extra)
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${name}"
    return plan_save(name="dupes", source_url=source, mapping=mapping)


def test_two_rows_with_one_item_key_fail_the_run_naming_both_source_keys(db, dynamodb, sqlite_source):
    plan = _colliding_plan(sqlite_source)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)

    assert run.status == "failed"
    assert "{'id': 2} (written first) and {'id': 3}" in run.last_error
    assert "plan dupes, table main.things, rule things, source key {'id': 3}" in run.last_error
    (bad,) = QuarantinedRow.objects.filter(run=run)
    assert bad.source_key == {"id": 3}
    assert "THING#thing 2" in bad.reason


def test_last_wins_policy_keeps_the_later_row(db, dynamodb, sqlite_source):
    plan = _colliding_plan(sqlite_source, **{"key-collisions": "last-wins"})
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)

    assert run.status == "succeeded"
    assert run.items_written == 3
    assert run.items_skipped == 1
    assert dynamodb_get_item(table="Things", key={"PK": "THING#thing 2"})["id"] == 3


def test_limit_reads_at_most_n_rows(things_plan):
    with plan_context(plan=things_plan) as context:
        run = run_execute(run=run_create(context=context, limit=10, segments=4), context=context)

    assert run.rows_read == 10
    assert len(list(dynamodb_scan_segment(table="Things"))) == 10


def test_write_units_are_what_dynamodb_reported_for_the_run_even_with_a_cost_ledger_flush_mid_run(
    transactional_db, things_plan, settings
):
    # given pages of 25 rows, four units at once in threads of one process (PostgreSQL control database),
    # the endpoint reporting 2 units an item, and the process's capacity counters moved to the cost ledger
    # (which resets them) after every page
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 25
    reported = []

    def report_two_units_an_item(operation, params, send):
        response = send(params)
        if operation == "BatchWriteItem":
            ((table, requests),) = params["RequestItems"].items()
            response["ConsumedCapacity"] = [{"TableName": table, "CapacityUnits": 2.0 * len(requests)}]
            reported.append(2.0 * len(requests))
        return response

    with fault_injection(report_two_units_an_item), plan_context(plan=things_plan) as context:
        run = run_create(context=context, segments=4)
        run = run_execute(run=run, context=context, workers=4, on_rows=lambda _rows: capacity_flush())

    # then the run counts every unit once, none lost to the resets, none counted by two units
    assert run.status == "succeeded", run.last_error
    assert sum(reported) == 460.0
    assert run.write_units == 460.0
