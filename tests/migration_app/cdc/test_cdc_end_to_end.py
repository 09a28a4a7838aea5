"""Change capture end to end on the real PostgreSQL: writes during backfill and CDC, then equal to a SELECT."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.test import Client
from django.utils import timezone

from lizzy.dynamodb import dynamodb_scan_segment
from lizzy.observability.alarms import alarm_states
from migration_app.cdc.streams import cdc_stream_active
from migration_app.cdc.worker import CdcBusy, LeaseLost, cdc_run, lease_acquire
from migration_app.models import CdcStatus, CdcStream, Phase
from migration_app.services.phases import PhaseGuardFailed, phase_guard, plan_advance, plan_rollback
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.migration_app.cdc.conftest import publications_of, slots_of
from tests.migration_app.cdc.workload import WriteRecorder, Writers, expected_items, mapping, setup_source

# Transactional tests: a replication slot is created only once every transaction on the server has ended,
# the test's own included, so these tests cannot run inside one.
pytestmark = pytest.mark.integration


@pytest.fixture
def cdc_db(transactional_db) -> None:
    """Django's database without a test transaction around it (see the module's note)."""


def _items(table: str) -> dict:
    return {(item["PK"], item["SK"]): item for item in dynamodb_scan_segment(table=table, consistent=True)}


def _cdc_plan(url: str, name: str = "cdc"):
    table = f"Stock-{uuid.uuid4().hex[:8]}"
    plan = plan_save(name=name, source_url=url, mapping=mapping(table))
    plan.cdc = True
    plan.save(update_fields=["cdc"])
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan, table


def _backfill(plan):
    with plan_context(plan=plan) as context:
        return run_execute(run=run_create(context=context, segments=2), context=context)


def _random_writes_then_equal(cdc_source: str, *, rows: int, cdc_seconds: float, rounds: int) -> None:
    setup_source(cdc_source, rows=rows)
    plan, table = _cdc_plan(cdc_source)

    # given the slot created when the plan enters backfill, before the backfill reads anything
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    stream = cdc_stream_active(plan=plan)
    assert slots_of(cdc_source) == [stream.slot_name]
    with WriteRecorder() as recorder:
        writers = Writers(cdc_source, connections=3).start()
        # when three connections write at random during the backfill ...
        run = _backfill(plan)
        assert run.status == "succeeded", run.last_error
        plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
        # ... and while the CDC worker applies (incarnations: one stops, the next resumes)
        for _ in range(rounds):
            recorder.next_incarnation()
            cdc_run(plan=plan, max_seconds=cdc_seconds / rounds)
        writes = writers.ops
        writers.stop()
        recorder.next_incarnation()
        with psycopg.connect(cdc_source) as source:
            stopped_at = source.execute("SELECT now()").fetchone()[0]
        outcome = cdc_run(plan=plan, until_idle=True)

    # then the worker caught up past the last write, and DynamoDB equals the source read with a plain SELECT
    stream.refresh_from_db()
    assert stream.caught_up_at > stopped_at
    assert writers.ops > writes // 2 > 0
    assert stream.changes_applied > rows, "the workload made changes during the CDC phase"
    expected = expected_items(cdc_source)
    found = _items(table)
    assert sorted(found) == sorted(expected)
    assert [key for key in expected if found[key] != expected[key]] == []
    assert any("big" in item and len(item["big"]) > 8000 for item in expected.values()), "TOASTed values were written"
    assert recorder.out_of_order(table=table, incarnations=set(range(1, rounds + 2))) == []
    assert outcome.waiting == ""
    # and the engine's own validation agrees, and the cutover guard accepts the caught-up stream
    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    plan_advance(plan=plan, to_phase=Phase.VALIDATE, actor="test")
    # the guard measures the time since the worker last caught up: a worker still running (here: once
    # more) vouches for the time the validation took
    cdc_run(plan=plan, until_idle=True)
    phase_guard(plan=plan, to_phase=Phase.CUTOVER)
    # entering cutover ends change capture: the slot and the publication are dropped
    plan_advance(plan=plan, to_phase=Phase.CUTOVER, actor="test")
    assert slots_of(cdc_source) == []
    assert publications_of(cdc_source) == []


def test_random_writes_during_backfill_and_cdc_end_equal_to_the_source(cdc_db, dynamodb, cdc_source, settings):
    settings.LIZZY_CDC_BATCH_CHANGES = 200  # many steps: batches cut between transactions
    _random_writes_then_equal(cdc_source, rows=300, cdc_seconds=3, rounds=2)


@pytest.mark.soak
def test_soak_a_minute_of_random_writes_ends_equal_to_the_source(cdc_db, dynamodb, cdc_source, settings):
    settings.LIZZY_CDC_BATCH_CHANGES = 500
    _random_writes_then_equal(cdc_source, rows=5000, cdc_seconds=60, rounds=6)


def test_cutover_needs_cdc_caught_up_and_rollback_drops_the_slot(cdc_db, dynamodb, cdc_source, settings):
    setup_source(cdc_source, rows=20)
    plan, _table = _cdc_plan(cdc_source, name="rollback")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    plan_validate(plan=plan)
    plan_advance(plan=plan, to_phase=Phase.VALIDATE, actor="test")

    # a worker that never ran: cutover refused
    with pytest.raises(PhaseGuardFailed, match="never caught up"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)
    # caught up, then writes go on and the worker lags past the threshold: refused again
    cdc_run(plan=plan, until_idle=True)
    phase_guard(plan=plan, to_phase=Phase.CUTOVER)
    CdcStream.objects.filter(plan=plan).update(
        caught_up_at=CdcStream.objects.get(plan=plan).caught_up_at.replace(year=2020)
    )
    with pytest.raises(PhaseGuardFailed, match="LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)

    # a rollback drops the slot and the publication on the source
    old = cdc_stream_active(plan=plan)
    plan_rollback(plan=plan, actor="test", reason="lag")
    assert plan.phase == Phase.PARALLEL
    old.refresh_from_db()
    assert old.status == CdcStatus.DROPPED
    assert slots_of(cdc_source) == []
    assert publications_of(cdc_source) == []
    # without a stream the worker refuses (it would have missed changes), and so does cutover
    with pytest.raises(Exception, match="no active CDC stream"):
        cdc_run(plan=plan, until_idle=True)
    # back to backfill: a new slot at once, so the backfill run again there is captured from its start
    plan_rollback(plan=plan, actor="test", reason="start over")
    assert plan.phase == Phase.BACKFILL
    fresh = cdc_stream_active(plan=plan)
    assert slots_of(cdc_source) == [fresh.slot_name]
    assert cdc_run(plan=plan, until_idle=True).waiting.startswith("waiting for a backfill")
    plan_rollback(plan=plan, actor="test", reason="to setup")
    assert slots_of(cdc_source) == []


def test_a_catch_up_is_refused_on_a_cdc_plan_and_a_second_worker_cannot_take_the_lease(cdc_db, dynamodb, cdc_source):
    setup_source(cdc_source, rows=5)
    plan, _table = _cdc_plan(cdc_source, name="lease")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    with plan_context(plan=plan) as context, pytest.raises(Exception, match="an updated_at catch-up"):
        run_create(context=context, kind="catch_up")
    stream = cdc_stream_active(plan=plan)
    held = lease_acquire(stream=stream, owner="other-worker", seconds=60)
    with pytest.raises(CdcBusy, match="other-worker"):
        cdc_run(plan=plan, until_idle=True)
    held.release()
    cdc_run(plan=plan, until_idle=True)
    # a worker whose lease was taken over (it stalled past its expiry) stops before its next write
    with psycopg.connect(cdc_source, autocommit=True) as source:
        source.execute("UPDATE stock SET qty = -1")

    def taken_over(_applied):
        CdcStream.objects.filter(pk=stream.pk).update(lease_expires_at=timezone.now())
        lease_acquire(stream=stream, owner="usurper", seconds=60)

    with pytest.raises(LeaseLost):
        cdc_run(plan=plan, until_idle=False, on_step=taken_over)
    assert CdcStream.objects.get(pk=stream.pk).lease_owner == "usurper"
    CdcStream.objects.filter(pk=stream.pk).update(lease_expires_at=None, lease_owner="")
    # once the worker has applied, a new backfill could race it: refused
    with plan_context(plan=plan) as context, pytest.raises(Exception, match="started applying"):
        run_create(context=context)


def test_a_forgotten_slot_raises_the_alarm_and_lag_is_on_metrics(cdc_db, dynamodb, cdc_source, settings, admin_user):
    setup_source(cdc_source, rows=5)
    plan, _table = _cdc_plan(cdc_source, name="forgotten")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    settings.LIZZY_CDC_ALARM_UNREAD_SECONDS = 600

    def firing():
        return {state.rule.key for state in alarm_states() if state.firing}

    assert "cdc_slot_unread:forgotten" not in firing()
    # nobody has read the slot for an hour (no worker runs): the alarm fires
    stream = cdc_stream_active(plan=plan)
    CdcStream.objects.filter(pk=stream.pk).update(created_at=stream.created_at.replace(year=2020))
    assert "cdc_slot_unread:forgotten" in firing()
    assert "cdc_lag_seconds:forgotten" in firing()  # never caught up since then
    # a worker reads it (waiting for the backfill, it still reads the slot): the unread alarm clears
    cdc_run(plan=plan, until_idle=True)
    assert "cdc_slot_unread:forgotten" not in firing()
    client = Client()
    client.force_login(admin_user)
    body = client.get("/metrics").content.decode()
    assert 'lizzy_cdc_unread_seconds{plan="forgotten"}' in body
    assert 'lizzy_cdc_lag_bytes{plan="forgotten"}' in body
    # and on the plan page and the dashboard's alarms panel
    page = client.get(f"/admin/migration_app/migrationplan/{plan.pk}/change/").content.decode()
    assert f"slot {stream.slot_name}: applied up to" in page
    dashboard = client.get("/admin/").content.decode()
    assert "CDC lag of forgotten (s)" in dashboard
