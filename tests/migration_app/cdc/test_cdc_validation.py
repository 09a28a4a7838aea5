"""Validation while the CDC worker runs, on the real PostgreSQL: changes in flight apart from differences.

Each test makes the in-flight keys on purpose (rows updated after the target was read, before the source is,
and the worker's writes held until the settle step waits for it: ``_Gate``), so the comparison is bound to name
them; what is checked is what the settle step makes of them.
"""

from __future__ import annotations

import random
import threading
import uuid

import psycopg
import pytest
from django.db import connection as django_connection

from lizzy.dynamodb import dynamodb_update_item
from migration_app.cdc import worker
from migration_app.cdc.worker import cdc_run
from migration_app.models import CdcStream, MigrationPlan, Phase
from migration_app.services import validation, validation_settle
from migration_app.services.phases import PhaseGuardFailed, phase_guard, plan_advance
from migration_app.services.plans import plan_save
from migration_app.services.validation import plan_validate
from tests.migration_app.cdc.workload import Writers, mapping, plan_backfilled_and_caught_up, setup_source

pytestmark = pytest.mark.integration

ROWS = 60
WRITTEN = range(1, 41)  # ids the background writer updates; 41..60 stay still
INJECTED = (45, 46, 47, 48, 49)  # updated once, after the target was read and before the source is
TAMPERED = 52  # its item is changed in DynamoDB directly: a real difference


@pytest.fixture
def cdc_db(transactional_db) -> None:
    """No test transaction around the test: a slot is created only once every transaction has ended."""


def _region(row_id: int) -> str:
    return ("eu", "us", "ap")[row_id % 3]


def _key(row_id: int) -> str:
    return f'{{"PK":{{"S":"R#{_region(row_id)}"}},"SK":{{"S":"ID#{row_id}"}}}}'


def _caught_up_plan(url: str) -> tuple[MigrationPlan, str]:
    """A CDC plan backfilled, in parallel, its worker caught up once."""
    setup_source(url, rows=ROWS)
    table = f"Stock-{uuid.uuid4().hex[:8]}"
    plan = plan_save(name=f"settle-{uuid.uuid4().hex[:6]}", source_url=url, mapping=mapping(table))
    plan.cdc = True
    plan.save(update_fields=["cdc"])
    plan_backfilled_and_caught_up(plan)
    return plan, table


def _update(url: str, ids) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for row_id in ids:
            db.execute(
                "UPDATE stock SET qty = coalesce(qty, 0) + 1, v = nextval('vseq') WHERE region = %s AND id = %s",
                [_region(row_id), row_id],
            )


class _Background:
    """Threads until stop(): the CDC worker (in short incarnations) and, optionally, a writer updating WRITTEN."""

    def __init__(self, plan: MigrationPlan, url: str, *, writer: bool, worker: bool = True) -> None:
        self.plan, self.url, self.stopping = plan, url, threading.Event()
        self.errors: list[BaseException] = []
        self.writes = 0
        self.threads = []
        if worker:
            self.threads.append(threading.Thread(target=self._work, daemon=True))
        if writer:
            self.threads.append(threading.Thread(target=self._write, daemon=True))

    def start(self) -> _Background:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            if thread.ident is not None:  # started
                thread.join(timeout=60)
        if self.errors:
            raise self.errors[0]

    def _work(self) -> None:
        try:
            plan = MigrationPlan.objects.get(pk=self.plan.pk)
            while not self.stopping.is_set():
                cdc_run(plan=plan, max_seconds=0.5, poll_seconds=0.02)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)
        finally:
            django_connection.close()

    def _write(self) -> None:
        rng = random.Random(15)
        try:
            with psycopg.connect(self.url, autocommit=True) as db:
                while not self.stopping.is_set():
                    row_id = rng.choice(WRITTEN)
                    db.execute(
                        "UPDATE stock SET qty = coalesce(qty, 0) + 1, v = nextval('vseq') "
                        "WHERE region = %s AND id = %s",
                        [_region(row_id), row_id],
                    )
                    self.writes += 1
                    self.stopping.wait(0.005)
        except BaseException as exc:
            self.errors.append(exc)


class _Gate:
    """Holds the CDC worker's writes from the moment ``INJECTED`` rows change (after every target segment was read,
    before any source part reads) until the settle step starts waiting for the worker: the comparison is bound to
    see those keys differ, and only the settle step can see them arrive. ``on_settle`` runs then too."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
        self.url = url
        self.writes_allowed = threading.Event()
        self.writes_allowed.set()
        self.injected = threading.Event()
        self.settling = threading.Event()
        self.on_settle = None
        real_part_run, real_write, real_wait = (
            validation.validation_part_run,
            worker.operations_write,
            validation_settle._wait_for,
        )

        def part_run(*, context, spec, mode, sample_size=validation.SAMPLE_SIZE):
            if spec["side"] == "source" and not self.injected.is_set():
                self.injected.set()
                self.writes_allowed.clear()
                _update(self.url, INJECTED)
            return real_part_run(context=context, spec=spec, mode=mode, sample_size=sample_size)

        def operations_write(operations, *, fence):
            assert self.writes_allowed.wait(60), "the settle step never started"
            return real_write(operations, fence=fence)

        def wait_for(*args, **kwargs):
            if not self.settling.is_set():
                self.settling.set()
                if self.on_settle is not None:
                    self.on_settle()
            self.writes_allowed.set()
            return real_wait(*args, **kwargs)

        monkeypatch.setattr(validation, "validation_part_run", part_run)
        monkeypatch.setattr(worker, "operations_write", operations_write)
        monkeypatch.setattr(validation_settle, "_wait_for", wait_for)


def _differences(report) -> dict[str, int]:
    return {name: count for name, count in report.summary().items() if name not in ("in_flight", "unsettled")}


NO_DIFFERENCES = {"missing": 0, "extra": 0, "different": 0, "count_mismatches": 0, "contract_violations": 0}


def test_changes_in_flight_while_the_worker_runs_are_not_differences(
    cdc_db, dynamodb, cdc_source, settings, monkeypatch
):
    # given a caught-up CDC plan, a writer updating rows all the time and the worker applying them
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 20
    plan, _table = _caught_up_plan(cdc_source)
    _Gate(monkeypatch, cdc_source)
    background = _Background(plan, cdc_source, writer=True).start()
    try:
        while background.writes < 20 and not background.errors:  # the writer under way before the validation
            background.stopping.wait(0.01)
        # when the plan is validated meanwhile
        report = plan_validate(plan=plan, sample_size=200)
    finally:
        background.stop()

    # then nothing is reported as a difference
    assert _differences(report) == NO_DIFFERENCES, report.samples
    # and the rows changed once after the target was read were seen in flight: followed until they arrived
    in_flight = {sample["key"] for sample in report.samples["in_flight"]}
    assert {_key(row_id) for row_id in INJECTED} <= in_flight, report.samples
    assert report.in_flight >= len(INJECTED)
    # and a key the writer changed in every round is unsettled, which keeps the report unclean (never clean by
    # accident); only the writer's keys can be
    unsettled = {sample["key"] for sample in report.samples.get("unsettled", [])}
    assert unsettled <= {_key(row_id) for row_id in WRITTEN}
    assert report.clean == (report.unsettled == 0)
    settle = report.samples["settle"][0]
    assert settle["stalled"] == ""
    assert settle["rounds"] >= 1
    assert settle["differences"] == 0


def test_a_real_difference_is_reported_as_one_while_other_keys_are_in_flight(
    cdc_db, dynamodb, cdc_source, settings, monkeypatch
):
    # given a caught-up CDC plan whose item TAMPERED was changed in DynamoDB behind the worker's back
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 20
    plan, table = _caught_up_plan(cdc_source)
    dynamodb_update_item(
        table=table,
        key={"PK": f"R#{_region(TAMPERED)}", "SK": f"ID#{TAMPERED}"},
        update="SET qty = :q",
        values={":q": 999_999},
    )
    _Gate(monkeypatch, cdc_source)
    background = _Background(plan, cdc_source, writer=True).start()
    try:
        # when it is validated while rows change and the worker applies them
        report = plan_validate(plan=plan, sample_size=200)
    finally:
        background.stop()

    # then the tampered item is a difference (its row never changed), not a key in flight; the others are
    assert report.different == 1, report.samples
    assert [sample["key"] for sample in report.samples["different"]] == [_key(TAMPERED)]
    assert {"field": "qty", "expected": {"N": str(TAMPERED)}, "actual": {"N": "999999"}} in report.samples["different"][
        0
    ]["fields"]
    assert _key(TAMPERED) not in {sample["key"] for sample in report.samples["in_flight"]}
    assert report.in_flight > 0
    assert (report.missing, report.extra, report.count_mismatches) == (0, 0, 0)
    assert not report.clean
    assert report.samples["settle"][0]["differences"] == 1


def test_with_the_worker_stopped_keys_are_unsettled_within_the_timeout_then_settle_once_it_resumes(
    cdc_db, dynamodb, cdc_source, settings, monkeypatch
):
    # given a caught-up CDC plan whose worker is not running
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 1
    settings.LIZZY_VALIDATION_SETTLE_ROUNDS = 3
    plan, _table = _caught_up_plan(cdc_source)
    plan_advance(plan=plan, to_phase=Phase.VALIDATE, actor="test")
    gate = _Gate(monkeypatch, cdc_source)

    # when the plan is validated while rows change behind the target's back (after it was read)
    report = plan_validate(plan=plan)

    # then the settle step waited once, for its timeout (no hang), said why, and the report is not clean
    settle = report.samples["settle"][0]
    assert (settle["rounds"], len(settle["positions"])) == (1, 1)
    assert "within LIZZY_VALIDATION_SETTLE_SECONDS (1 s" in settle["stalled"]
    assert "is migration_cdc running?" in settle["stalled"]
    assert _differences(report) == NO_DIFFERENCES, report.samples
    assert (report.unsettled, report.in_flight) == (len(INJECTED), 0)
    assert not report.clean
    assert {sample["reason"] for sample in report.samples["unsettled"]} == {settle["stalled"]}
    assert {sample["key"] for sample in report.samples["unsettled"]} == {_key(row_id) for row_id in INJECTED}
    # and the cutover guard refuses it, saying why (the worker is caught up now: lag is not the reason)
    cdc_run(plan=plan, until_idle=True)
    with pytest.raises(PhaseGuardFailed, match=r"5 key\(s\) or count\(s\) unsettled \(the CDC worker did not apply"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)

    # when the same rows change again, and the worker comes back only once the settle step waits for it
    background = _Background(plan, cdc_source, writer=False)
    gate.injected.clear()
    gate.settling.clear()
    gate.on_settle = background.start
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 20
    try:
        settled = plan_validate(plan=plan)
    finally:
        background.stop()

    # then the keys settled: in flight, the report clean, and the cutover guard accepts it while the lag is small
    assert gate.settling.is_set()
    assert (settled.in_flight, settled.unsettled) == (len(INJECTED), 0), settled.samples
    assert _differences(settled) == NO_DIFFERENCES
    assert settled.clean
    assert {sample["key"] for sample in settled.samples["in_flight"]} == {_key(row_id) for row_id in INJECTED}
    assert {sample["was"] for sample in settled.samples["in_flight"]} == {"different"}
    phase_guard(plan=plan, to_phase=Phase.CUTOVER)
    # and with the lag over the limit it refuses, saying the in-flight keys do not vouch for later changes
    stream = CdcStream.objects.get(plan=plan, status="active")
    CdcStream.objects.filter(pk=stream.pk).update(caught_up_at=stream.caught_up_at.replace(year=2020))
    with pytest.raises(PhaseGuardFailed, match=r"LIZZY_CDC_CUTOVER_MAX_LAG_SECONDS.*5 key\(s\) in flight"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)


def test_random_inserts_updates_deletes_and_key_changes_in_flight_are_never_differences(
    cdc_db, dynamodb, cdc_source, settings, monkeypatch
):
    # given a caught-up CDC plan, three connections inserting, updating, deleting and re-keying rows at random
    # (tests/migration_app/cdc/workload.py), and the worker applying them
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 20
    plan, _table = _caught_up_plan(cdc_source)
    _Gate(monkeypatch, cdc_source)
    writers = Writers(cdc_source, connections=3).start()
    background = _Background(plan, cdc_source, writer=False).start()
    try:
        while writers.ops < 30 and not writers.errors:
            background.stopping.wait(0.01)
        # when the plan is validated meanwhile
        report = plan_validate(plan=plan, sample_size=500)
    finally:
        writers.stop()
        background.stop()

    # then no key is a difference: each one named was in flight, or is unsettled (which keeps the report unclean)
    assert (report.missing, report.extra, report.different, report.contract_violations) == (0, 0, 0, 0), report.samples
    assert report.in_flight > 0
    kinds = {sample["was"] for sample in report.samples["in_flight"]}
    assert {"missing", "different"} <= kinds, kinds
    # and a count taken while rows came and went is unsettled, never a count mismatch and never clean
    assert report.count_mismatches == 0
    assert report.clean == (report.unsettled == 0)
    moved = [sample for sample in report.samples.get("unsettled", []) if "key" not in sample]
    assert all(sample["reason"] == validation_settle.REASON_COUNTS_MOVED for sample in moved)
