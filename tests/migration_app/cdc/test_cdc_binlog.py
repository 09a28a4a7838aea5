"""Change capture from MySQL/MariaDB's row-based binlog, on the real MariaDB: the PostgreSQL guarantees.

Writes from several connections during the backfill and the parallel phase end equal to a plain SELECT, no
key written out of order; a SIGKILLed worker resumes from the position in the stream's row; a purged binlog
raises the alarm; rollback ends the stream; a bad row is quarantined; every column type the binlog reader
decodes reaches DynamoDB as the backfill's SELECT writes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection as django_connection
from django.test import Client
from django.utils import timezone

from lizzy.dynamodb import dynamodb_scan_segment, dynamodb_update_item
from lizzy.errors import ApplicationError
from lizzy.observability.alarms import alarm_states
from migration_app.cdc import binlog
from migration_app.cdc.apply import CdcApplyError
from migration_app.cdc.capture import capture_open
from migration_app.cdc.streams import cdc_stream_active
from migration_app.cdc.worker import CdcBusy, cdc_run
from migration_app.models import CdcStatus, CdcStream, Phase, QuarantinedRow
from migration_app.services import validation_settle
from migration_app.services.phases import phase_guard, plan_advance, plan_rollback
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.migration_app.cdc import binlog_workload as workload
from tests.migration_app.cdc.conftest import BINLOG_SERVER_ID_BASE
from tests.migration_app.cdc.workload import WriteRecorder

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2


@pytest.fixture
def cdc_db(transactional_db) -> None:
    """Django's database without a test transaction around it: the worker thread and subprocess see its rows."""


def _items(table: str) -> dict:
    return {(item["PK"], item.get("SK")): item for item in dynamodb_scan_segment(table=table, consistent=True)}


def _plan(url: str, mapping: dict, *, name: str | None = None, max_bad_rows: int = 0):
    plan = plan_save(name=name or f"binlog-{uuid.uuid4().hex[:6]}", source_url=url, mapping=mapping)
    plan.cdc, plan.max_bad_rows = True, max_bad_rows
    plan.save(update_fields=["cdc", "max_bad_rows"])
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def _backfill(plan):
    with plan_context(plan=plan) as context:
        return run_execute(run=run_create(context=context, segments=2), context=context)


def _stock_plan(url: str, *, rows: int, name: str | None = None):
    first_version = workload.setup_source(url, rows=rows)
    table = f"Stock-{uuid.uuid4().hex[:8]}"
    return _plan(url, workload.mapping(table, url), name=name), table, first_version


def _firing() -> set[str]:
    return {state.rule.key for state in alarm_states() if state.firing}


def test_random_writes_during_backfill_and_cdc_end_equal_to_the_source(cdc_db, dynamodb, binlog_source, settings):
    settings.LIZZY_CDC_BATCH_CHANGES = 150  # many steps: batches cut between transactions
    plan, table, first_version = _stock_plan(binlog_source, rows=100)
    # given the stream's position noted when the plan enters backfill, before the backfill reads anything
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    stream = cdc_stream_active(plan=plan)
    assert binlog.position_int(stream.start_lsn) > 0
    assert stream.publication_name == ""
    with WriteRecorder() as recorder:
        writers = workload.Writers(binlog_source, first_version=first_version, connections=3).start()
        # when three connections write at random during the backfill ...
        assert _backfill(plan).status == "succeeded"
        plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
        # ... and while the worker applies (two incarnations: one stops, the next resumes from the row)
        for _ in range(2):
            recorder.next_incarnation()
            cdc_run(plan=plan, max_seconds=1.0)
        writes = writers.ops
        writers.stop()
        stopped_at = dt.datetime.now(dt.UTC)
        recorder.next_incarnation()
        outcome = cdc_run(plan=plan, until_idle=True)

    # then the worker caught up past the last write, with no binlog byte left behind ...
    stream.refresh_from_db()
    assert stream.caught_up_at > stopped_at
    assert (outcome.waiting, stream.lag_bytes) == ("", 0)
    assert writers.ops >= writes > 0
    assert stream.changes_applied > 50, "the workload made changes during the CDC phase"
    # ... DynamoDB equals the source read with a plain SELECT, and no key was written out of order
    expected = workload.expected_items(binlog_source)
    found = _items(table)
    assert sorted(found) == sorted(expected)
    assert [key for key in expected if found[key] != expected[key]] == []
    assert recorder.out_of_order(table=table, incarnations={1, 2, 3}) == []
    # and the engine's validation agrees, the cutover guard accepts the caught-up stream, cutover ends it
    assert plan_validate(plan=plan).clean
    plan_advance(plan=plan, to_phase=Phase.VALIDATE, actor="test")
    cdc_run(plan=plan, until_idle=True)
    phase_guard(plan=plan, to_phase=Phase.CUTOVER)
    plan_advance(plan=plan, to_phase=Phase.CUTOVER, actor="test")
    assert CdcStream.objects.get(pk=stream.pk).status == CdcStatus.DROPPED


def test_validation_while_the_worker_runs_reports_no_false_difference(cdc_db, dynamodb, binlog_source, settings):
    # given a caught-up plan, rows changing at random and the worker applying them in a thread
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 10
    plan, table, first_version = _stock_plan(binlog_source, rows=100)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # and a row the writers never touch (their regions are eu, us, ap) whose item was changed in DynamoDB
    # behind the worker's back: a real difference
    workload.execute(binlog_source, "INSERT INTO stock VALUES ('zz', 1, 7, 1, NULL, NULL, 1)")
    cdc_run(plan=plan, until_idle=True)
    dynamodb_update_item(table=table, key=TAMPERED, update="SET qty = :q", values={":q": 999_999})
    writers = workload.Writers(binlog_source, first_version=first_version, connections=2).start()
    stopping, errors = threading.Event(), []

    def work() -> None:
        try:
            while not stopping.is_set():
                cdc_run(plan=plan, max_seconds=0.5)
        except BaseException as exc:
            errors.append(exc)
        finally:
            django_connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while writers.ops < 30 and not writers.errors:
            time.sleep(0.01)
        # when the plan is validated meanwhile
        report = plan_validate(plan=plan, sample_size=500)
    finally:
        writers.stop()
        stopping.set()
        worker.join(timeout=30)
    assert errors == []
    # then no key is a false difference: each one named arrived once the worker passed the binlog position
    # noted after the source's snapshot (in flight), or kept changing (unsettled) ...
    assert (report.missing, report.extra, report.contract_violations) == (0, 0, 0), report.samples
    assert report.count_mismatches == 0
    assert report.in_flight > 0, "rows changed between the target's and the source's reads (measured: 4 to 5 keys)"
    settle = report.samples["settle"][0]
    assert all(":" in position for position in settle["positions"]), settle
    reasons = {sample["reason"] for sample in report.samples.get("unsettled", [])}
    assert reasons <= {validation_settle.REASON_COUNTS_MOVED, validation_settle.REASON_CHANGING.format(rounds=3)}
    # ... and the real difference is one: the binlog between the two snapshots shows its row did not change
    # (MySQL's stand-in for PostgreSQL's row version)
    assert [sample["key"] for sample in report.samples["different"]] == [TAMPERED_KEY], report.samples
    assert report.different == 1
    assert not report.clean
    # and once the row changes again (the worker rewrites its item) and the worker caught up: clean
    workload.execute(binlog_source, "UPDATE stock SET qty = 8, v = 2 WHERE region = 'zz'")
    cdc_run(plan=plan, until_idle=True)
    assert plan_validate(plan=plan).clean


TAMPERED = {"PK": "R#zz", "SK": "ID#1"}
TAMPERED_KEY = '{"PK":{"S":"R#zz"},"SK":{"S":"ID#1"}}'


def _env(dynamodb_url: str) -> dict[str, str]:
    database = django_connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "LIZZY_CDC_LEASE_SECONDS": str(LEASE_SECONDS),
        "LIZZY_CDC_POLL_SECONDS": "0.05",
        "LIZZY_CDC_BATCH_CHANGES": "40",  # many small steps: a kill lands between write and confirm often
        "LIZZY_CDC_BINLOG_SERVER_ID_BASE": str(BINLOG_SERVER_ID_BASE),
    }


def _start(plan: str, stream_id: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    """A worker subprocess, once it holds the lease (a start refused within the killed one's lease is retried)."""
    deadline = time.monotonic() + 60
    while True:
        stream = CdcStream.objects.get(pk=stream_id)
        token = stream.lease_token
        if stream.lease_expires_at is not None:  # a killed worker's lease: wait it out rather than be refused
            time.sleep(max((stream.lease_expires_at - timezone.now()).total_seconds() + 0.1, 0))
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "migration_cdc", plan, *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while worker.poll() is None and CdcStream.objects.get(pk=stream_id).lease_token == token:
            assert time.monotonic() < deadline, "the worker never took the lease"
            time.sleep(0.02)
        if worker.poll() is None or worker.returncode == 0:
            return worker
        _out, err = worker.communicate()
        assert "holds the lease" in err, err[-2000:]
        time.sleep(0.2)


def test_a_worker_killed_mid_stream_resumes_with_nothing_lost_and_nothing_out_of_order(
    cdc_db, live_dynamodb, binlog_source
):
    if django_connection.vendor != "postgresql":
        pytest.skip("the worker subprocess needs Django's database on a server (DATABASE_URL=postgres://...)")
    plan, table, first_version = _stock_plan(binlog_source, rows=100, name="binlog-killed")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    stream = cdc_stream_active(plan=plan)
    env = _env(live_dynamodb)
    with WriteRecorder() as recorder:
        recorder.next_incarnation()
        worker = _start(plan.name, stream.pk, env)
        writers = workload.Writers(binlog_source, first_version=first_version, connections=3).start()
        try:
            # when the worker is SIGKILLed while it is applying
            deadline = time.monotonic() + 30
            while CdcStream.objects.get(pk=stream.pk).transactions_applied < 10:
                assert worker.poll() is None, worker.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the worker applied nothing"
                time.sleep(0.02)
            time.sleep(0.1)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        finally:
            writers.stop()
        killed_at = CdcStream.objects.get(pk=stream.pk).confirmed_lsn
        # then a new worker, once the lease expired, catches up from the position the row confirmed
        recorder.next_incarnation()
        final = _start(plan.name, stream.pk, env, "--until-idle")
        assert final.wait(timeout=60) == 0, final.communicate()[1][-2000:]

    expected = workload.expected_items(binlog_source)
    found = _items(table)
    assert sorted(found) == sorted(expected), "0 lost, 0 extra"
    assert [key for key in expected if found[key] != expected[key]] == []
    assert recorder.out_of_order(table=table, incarnations={1, 2}) == []
    assert binlog.position_int(CdcStream.objects.get(pk=stream.pk).confirmed_lsn) > binlog.position_int(killed_at)


def test_a_purged_binlog_stops_the_worker_and_raises_the_alarm(cdc_db, dynamodb, binlog_source, admin_user):
    plan, _table, _version = _stock_plan(binlog_source, rows=5, name="binlog-purged")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    cdc_run(plan=plan, until_idle=True)  # waiting for the backfill, it reads the binlog's state
    stream = cdc_stream_active(plan=plan)
    assert "cdc_source_lost:binlog-purged" not in _firing()
    client = Client()
    client.force_login(admin_user)
    assert 'lizzy_cdc_source_lost{plan="binlog-purged"} 0.0' in client.get("/metrics").content.decode()
    # given the binlog file of the stream's position purged from the server before a worker read it
    workload.execute(binlog_source, "INSERT INTO stock VALUES ('eu', 99, 1, 1, NULL, NULL, 99)")
    admin = binlog.source_connect(binlog_source)
    try:
        gone = binlog.position_parse(stream.confirmed_lsn)[0]
        with admin.cursor() as cursor:
            cursor.execute("FLUSH BINARY LOGS")
            newest = binlog.binary_logs(admin)[-1][0]
            deadline = time.monotonic() + 20
            # MariaDB keeps a file until its binlog checkpoint has passed (InnoDB flushed its commits): retried
            while gone in [name for name, _size in binlog.binary_logs(admin)]:
                assert time.monotonic() < deadline, "the binlog was not purged"
                cursor.execute(f"PURGE BINARY LOGS TO '{newest}'")
                time.sleep(0.1)
    finally:
        admin.close()
    # when the worker starts, it stops naming the purged file, and the alarm fires (metrics, dashboard)
    with pytest.raises(ApplicationError, match=r"binlog .* is no longer on the source: it was purged"):
        cdc_run(plan=plan, until_idle=True)
    stream.refresh_from_db()
    assert stream.source_lost_at is not None
    assert "purged" in stream.last_error
    assert "cdc_source_lost:binlog-purged" in _firing()
    assert 'lizzy_cdc_source_lost{plan="binlog-purged"} 1.0' in client.get("/metrics").content.decode()
    assert "CDC position of binlog-purged gone from the source" in client.get("/admin/").content.decode()
    page = client.get(f"/admin/migration_app/migrationplan/{plan.pk}/change/").content.decode()
    assert f"binlog stream {stream.slot_name}: applied up to {stream.confirmed_lsn}" in page
    assert "its position is gone from the source: roll back to setup" in page
    # and a rollback to setup ends the lost stream (the alarm with it)
    plan_rollback(plan=plan, actor="test", reason="binlog purged")
    assert "cdc_source_lost:binlog-purged" not in _firing()


def _parts_mapping(table: str, url: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "parts",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": workload.database(url), "table-name": "parts"},
                "target-table-name": table,
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "SKU#${sku}"}
                    ],
                },
            }
        ]
    }


def test_a_bad_row_is_quarantined_once_and_a_truncate_stops_capture(cdc_db, dynamodb, binlog_source):
    workload.execute(
        binlog_source,
        "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), qty int, made date NULL)",
        "INSERT INTO parts (id, sku, qty) VALUES (1, 'a', 1), (2, 'b', 2)",
    )
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-bad", max_bad_rows=5)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # given a row whose key attribute is built from a NULL column, between good changes
    admin = binlog.source_connect(binlog_source)
    before = binlog.position_int(binlog.master_position(admin, url=binlog_source))
    workload.execute(
        binlog_source,
        "INSERT INTO parts (id, sku, qty) VALUES (3, 'c', 3)",
        "INSERT INTO parts (id, sku, qty) VALUES (4, NULL, 4)",
        "UPDATE parts SET sku = 'bb', qty = 20 WHERE id = 2",  # a key change: the old item goes
        "INSERT INTO parts (id, sku, qty) VALUES (5, 'e', 5)",
    )
    after = binlog.position_int(binlog.master_position(admin, url=binlog_source))
    admin.close()
    # (validation's stand-in for a row version names exactly the rows changed in between, as the comparison's
    # keys name them: entity and encoded source key)
    capture = capture_open(stream=cdc_stream_active(plan=plan), reader="validation")
    try:
        with plan_context(plan=plan) as context:
            changed = capture.changed_identities(context, start=before, end=after)
            name = context.entities[0].name
    finally:
        capture.close()
    assert changed == {json.dumps([name, [row_id]]) for row_id in (2, 3, 4, 5)}
    outcome = cdc_run(plan=plan, until_idle=True)
    assert (outcome.stopped, outcome.quarantined) == ("", 1)
    assert {item["PK"]: int(item["qty"]) for item in _items(table).values()} == {
        "SKU#a": 1,
        "SKU#bb": 20,
        "SKU#c": 3,
        "SKU#e": 5,
    }
    [row] = QuarantinedRow.objects.filter(plan=plan)
    stream = cdc_stream_active(plan=plan)
    assert (row.stream_id, row.change, row.source_key, row.rule) == (stream.pk, "insert", {"id": 4}, "parts")
    assert row.source_table == f"{workload.database(binlog_source)}.parts"
    assert "NULL" in row.reason
    assert "sku" in row.reason
    assert binlog.position_int(row.commit_lsn) > binlog.position_int(stream.start_lsn)
    # when more changes come, the bad one is not quarantined again
    workload.execute(binlog_source, "INSERT INTO parts (id, sku, qty) VALUES (6, 'f', 6)")
    assert cdc_run(plan=plan, until_idle=True).quarantined == 0
    assert QuarantinedRow.objects.filter(plan=plan).count() == 1
    # a zero date, which the binlog reader cannot carry, makes its row bad too (a SELECT reads it as text)
    workload.execute(binlog_source, "SET SESSION sql_mode = ''", "INSERT INTO parts VALUES (7, 'g', 7, '0000-00-00')")
    assert cdc_run(plan=plan, until_idle=True).quarantined == 1
    zero = QuarantinedRow.objects.filter(plan=plan).order_by("-id").first()
    assert (zero.source_key, zero.change) == ({"id": 7}, "insert")
    assert "zero or invalid date" in zero.reason
    assert "SKU#g" not in {item["PK"] for item in _items(table).values()}
    # and a TRUNCATE cannot be replayed item by item: capture stops naming the table, not past it
    confirmed = cdc_stream_active(plan=plan).confirmed_lsn
    workload.execute(binlog_source, "TRUNCATE TABLE parts")
    with pytest.raises(CdcApplyError, match=r"TRUNCATE of .*\.parts"):
        cdc_run(plan=plan, until_idle=True)
    assert cdc_stream_active(plan=plan).confirmed_lsn == confirmed


def test_a_worker_killed_after_quarantining_before_confirming_counts_the_bad_row_once(
    cdc_db, live_dynamodb, binlog_source
):
    if django_connection.vendor != "postgresql":
        pytest.skip("the worker subprocess needs Django's database on a server (DATABASE_URL=postgres://...)")
    workload.execute(binlog_source, "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), qty int)")
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-bad-killed", max_bad_rows=5)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    confirmed = cdc_stream_active(plan=plan).confirmed_lsn
    workload.execute(binlog_source, "INSERT INTO parts VALUES (3, NULL, 3)", "INSERT INTO parts VALUES (4, 'd', 4)")
    # when a worker is SIGKILLed after it quarantined the row and before it confirmed the position
    killed = subprocess.run(
        [sys.executable, "-m", "tests.migration_app.cdc.killable_cdc", plan.name],
        cwd=ROOT,
        env=_env(live_dynamodb),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert QuarantinedRow.objects.filter(plan=plan).count() == 1
    assert CdcStream.objects.get(plan=plan).confirmed_lsn == confirmed
    # then the next worker (once the dead one's lease expired) reads the change again: still one row
    deadline = time.monotonic() + 30
    while True:
        try:
            outcome = cdc_run(plan=plan, until_idle=True)
            break
        except CdcBusy:
            assert time.monotonic() < deadline, "the killed worker's lease never expired"
            time.sleep(0.2)
    assert (outcome.stopped, outcome.quarantined) == ("", 0)
    assert QuarantinedRow.objects.filter(plan=plan).count() == 1
    assert {item["PK"]: int(item["qty"]) for item in _items(table).values()} == {"SKU#d": 4}
    assert CdcStream.objects.get(plan=plan).confirmed_lsn != confirmed


TYPES_DDL = """
CREATE TABLE kinds (
  id int PRIMARY KEY, flag tinyint(1), f float, d double, amount decimal(12,3), big bigint unsigned,
  name varchar(40), latin varchar(10) CHARACTER SET latin1, body text, raw varbinary(8), fixed binary(4),
  day date, at datetime(6), stamp timestamp(3) NULL, span time, yr year, mood enum('sad','glad'),
  tags set('x','y','z'), bits bit(1), doc json
)
"""
KINDS_VALUES = (
    "1, 0.1, 123456.789, 1234.500, 18446744073709551615, 'héllo €', 'café', 'text ✓', x'00ff', 'ab', "
    "'2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.120', '-12:30:00', 2024, 'glad', "
    "'z,x', b'1', '{\"a\": 1.10, \"b\": [1, 2]}'"
)


def test_every_type_the_binlog_carries_reaches_dynamodb_as_the_backfill_writes_it_and_rollback_ends_the_stream(
    cdc_db, dynamodb, binlog_source
):
    # given a row of every common type, backfilled
    workload.execute(binlog_source, TYPES_DDL, f"INSERT INTO kinds VALUES (1, {KINDS_VALUES})")  # noqa: S608
    table = f"Kinds-{uuid.uuid4().hex[:8]}"
    mapping = _parts_mapping(table, binlog_source)
    rule = mapping["rules"][0]
    rule["object-locator"]["table-name"] = "kinds"
    rule["mapping-parameters"]["attribute-mappings"][0]["value"] = "K#${id}"
    plan = _plan(binlog_source, mapping, name="binlog-kinds")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # when the same values arrive through the binlog: an insert, and an update that sets them again
    workload.execute(
        binlog_source,
        f"INSERT INTO kinds VALUES (2, {KINDS_VALUES})",  # noqa: S608
        "INSERT INTO kinds (id, tags) VALUES (3, '')",  # the empty SET (the reader says None) and NULLs
        "INSERT INTO kinds (id, tags) VALUES (4, NULL)",
        "UPDATE kinds SET id = 5 WHERE id = 1",  # a key change: item 1 goes, item 5 is the backfilled row's values
    )
    assert cdc_run(plan=plan, until_idle=True).stopped == ""
    items = {item["PK"]: item for item in _items(table).values()}
    # then the items written from the binlog equal the one the backfill wrote from a SELECT ...
    backfilled = {name: value for name, value in _backfilled(binlog_source, table).items() if name not in ("PK", "id")}
    for key in ("K#2", "K#5"):
        assert {name: value for name, value in items[key].items() if name not in ("PK", "id")} == backfilled, key
    assert "K#1" not in items
    # ... and the hand-written values (not the engine's): FLOAT as a SELECT shows it, SET in declared order,
    # BINARY padded, BIT as bytes, TIMESTAMP in UTC, DECIMAL exact, JSON with exact numbers
    two = items["K#2"]
    assert two["f"] == Decimal("0.1")
    assert two["amount"] == Decimal("1234.500")
    assert two["tags"] == "x,z"
    assert two["mood"] == "glad"
    assert two["flag"] is True
    assert two["big"] == Decimal("18446744073709551615")
    assert two["name"] == "héllo €"
    assert two["latin"] == "café"
    assert bytes(two["fixed"]) == b"ab\x00\x00"
    assert bytes(two["raw"]) == b"\x00\xff"
    assert two["bits"] is True
    assert two["doc"] == {"a": Decimal("1.10"), "b": [Decimal(1), Decimal(2)]}
    assert items["K#3"]["tags"] == ""
    assert "tags" not in items["K#4"]
    # and the engine's validation (the backfill's read of the source) finds nothing different
    assert plan_validate(plan=plan).clean
    # when the plan is rolled back while the worker runs, the stream ends and the worker stops at its next step
    stream = cdc_stream_active(plan=plan)

    def rolled_back(_applied) -> None:
        plan_rollback(plan=plan, actor="test", reason="to backfill")

    with pytest.raises(ApplicationError, match="was ended"):
        cdc_run(plan=plan, on_step=rolled_back)
    assert CdcStream.objects.get(pk=stream.pk).status == CdcStatus.DROPPED
    # the rollback landed in backfill: a new stream starts there, at the binlog's end, for the next backfill
    fresh = cdc_stream_active(plan=plan)
    assert fresh.pk != stream.pk
    assert binlog.position_int(fresh.start_lsn) >= binlog.position_int(stream.confirmed_lsn)
    plan_rollback(plan=plan, actor="test", reason="to setup")
    assert cdc_stream_active(plan=plan) is None


def _backfilled(url: str, table: str) -> dict:
    """The item a backfill (a SELECT) writes for row 2, whose values the CDC worker wrote from the binlog: a
    second plan's backfill of the same source into another table."""
    other = f"{table}-b"
    mapping = _parts_mapping(other, url)
    rule = mapping["rules"][0]
    rule["object-locator"]["table-name"] = "kinds"
    rule["mapping-parameters"]["attribute-mappings"][0]["value"] = "K#${id}"
    plan = plan_save(name=f"binlog-kinds-b-{uuid.uuid4().hex[:4]}", source_url=url, mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    return {item["PK"]: item for item in _items(other).values()}["K#2"]


def test_a_server_without_a_row_based_binlog_is_refused_naming_each_setting(monkeypatch):
    rows = [("log_bin", "ON"), ("binlog_format", "MIXED"), ("binlog_row_image", "MINIMAL")]
    monkeypatch.setattr(binlog, "_rows", lambda _connection, _sql: rows)
    assert binlog.server_problems(None) == [
        "binlog_format is MIXED, not ROW",
        "binlog_row_image is MINIMAL, not FULL",
        "binlog_row_metadata is not a variable of this server (too old)",
    ]
    assert binlog.position_int("mysql-bin.000010:4") > binlog.position_int("mysql-bin.000009:4294967")
    assert binlog.position_parse("mysql-bin-changelog.000123:77") == ("mysql-bin-changelog.000123", 77)


def test_a_zero_year_and_a_zero_timestamp_are_not_rewritten_as_1900_and_1970(cdc_db, dynamodb, binlog_source):
    # given YEAR and TIMESTAMP columns holding their zero values (sql_mode ''), one row backfilled
    workload.execute(
        binlog_source,
        "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), yr year NULL, at timestamp(3) NULL DEFAULT NULL)",
        "INSERT INTO parts (id, sku, yr) VALUES (1, 'a', 0)",
    )
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-zeros", max_bad_rows=5)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    assert int(_items(table)[("SKU#a", None)]["yr"]) == 0  # the SELECT reads YEAR 0000 as 0
    # when the same zero values arrive through the binlog (which holds YEAR 0000 as 0 and TIMESTAMP zero as 0 s)
    workload.execute(
        binlog_source,
        "SET SESSION sql_mode = ''",
        "INSERT INTO parts (id, sku, yr) VALUES (2, 'b', 0)",
        "INSERT INTO parts (id, sku, at) VALUES (3, 'c', '0000-00-00 00:00:00')",
    )
    outcome = cdc_run(plan=plan, until_idle=True)
    items = {item["PK"]: item for item in _items(table).values()}
    # then YEAR 0000 stays 0 (not 1900, a year a YEAR column cannot hold) ...
    assert int(items["SKU#b"]["yr"]) == 0
    # ... and the zero TIMESTAMP is a bad row as a zero DATE is (docs/MIGRATIONS.md), not 1970-01-01T00:00:00Z
    assert "SKU#c" not in items, items.get("SKU#c")
    assert outcome.quarantined == 1
    [row] = QuarantinedRow.objects.filter(plan=plan)
    assert row.source_key == {"id": 3}
    assert "zero or invalid date" in row.reason


def test_text_in_utf16_ucs2_utf32_and_latin1_and_an_all_zero_binary_reach_dynamodb_as_selected(
    cdc_db, dynamodb, binlog_source
):
    # given text columns in the character sets python-mysql-replication decodes otherwise than the server
    # (UTF-16/UCS-2/UTF-32 are big-endian on the server; its latin1 is cp1252 with the five undefined bytes as
    # the C1 controls) and a BINARY(3) holding only NUL bytes (the binlog strips them all)
    workload.execute(
        binlog_source,
        "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), u16 varchar(10) CHARACTER SET utf16, "
        "u2 varchar(10) CHARACTER SET ucs2, u32 varchar(10) CHARACTER SET utf32, "
        "l1 varchar(10) CHARACTER SET latin1, bn binary(3))",
    )
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-charsets")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # when a row arrives through the binlog
    workload.execute(
        binlog_source,
        "INSERT INTO parts VALUES (1, 'a', 'é😀', 'üx', 'ß😀', CONCAT('€', CONVERT(x'81' USING latin1)), x'000000')",
    )
    outcome = cdc_run(plan=plan, until_idle=True)
    # then its item holds the text the server holds, and the BINARY(3) as its three bytes
    assert (outcome.stopped, outcome.quarantined) == ("", 0)
    item = _items(table)[("SKU#a", None)]
    assert (item["u16"], item["u2"], item["u32"], item["l1"]) == ("é😀", "üx", "ß😀", "€\x81")
    assert bytes(item["bn"]) == b"\x00\x00\x00"
    # and the engine's validation (a SELECT of the source) agrees
    assert plan_validate(plan=plan).clean


def test_a_mariadb_uuid_reaches_dynamodb_as_text_as_selected(cdc_db, dynamodb, binlog_source):
    # given MariaDB's UUID columns (10.7+), which the binlog holds as their 16 bytes (INET6/INET4 have no mapping)
    workload.execute(binlog_source, "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), u uuid, u7 uuid)")
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-uuid")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # when a row arrives through the binlog (a version-1 UUID, which MariaDB stores segments swapped, a version 7)
    workload.execute(
        binlog_source,
        "INSERT INTO parts VALUES (1, 'a', '123e4567-e89b-12d3-a456-426614174000', "
        "'01890a5d-ac96-774b-bcce-b302099a8057'), (2, 'b', '00000000-0000-0000-0000-000000000000', NULL)",
    )
    assert cdc_run(plan=plan, until_idle=True).stopped == ""
    # then the item holds the text a SELECT reads, not the bytes
    item = _items(table)[("SKU#a", None)]
    assert (item["u"], item["u7"]) == ("123e4567-e89b-12d3-a456-426614174000", "01890a5d-ac96-774b-bcce-b302099a8057")
    nil = _items(table)[("SKU#b", None)]
    assert (nil["u"], "u7" in nil) == ("00000000-0000-0000-0000-000000000000", False)
    assert plan_validate(plan=plan).clean


def test_an_xa_transaction_is_not_dropped_silently(cdc_db, dynamodb, binlog_source):
    # given a caught-up plan
    workload.execute(binlog_source, "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), qty int)")
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-xa")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    # when a row is committed by a two-phase XA transaction (its rows are in the binlog's XA PREPARE group,
    # which ends with no Xid; the XA COMMIT is a group of its own, later), between two plain inserts
    workload.execute(
        binlog_source,
        "INSERT INTO parts VALUES (1, 'a', 1)",
        "XA START 'lizzy-q'",
        "INSERT INTO parts VALUES (2, 'b', 2)",
        "XA END 'lizzy-q'",
        "XA PREPARE 'lizzy-q'",
        "XA COMMIT 'lizzy-q'",
        "INSERT INTO parts VALUES (3, 'c', 3)",
    )
    # then the worker stops saying why, before the row after it: it does not confirm past the XA row, leaving it out
    confirmed = cdc_stream_active(plan=plan).confirmed_lsn
    with pytest.raises(binlog.BinlogError, match="XA PREPARE"):
        cdc_run(plan=plan, until_idle=True)
    assert cdc_stream_active(plan=plan).confirmed_lsn == confirmed
    assert "SKU#c" not in {item["PK"] for item in _items(table).values()}


def test_a_session_writing_statements_to_the_binlog_stops_capture_naming_binlog_format(cdc_db, dynamodb, binlog_source):
    # given a caught-up plan on a server whose binlog_format is ROW
    workload.execute(binlog_source, "CREATE TABLE parts (id int PRIMARY KEY, sku varchar(10), qty int)")
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    plan = _plan(binlog_source, _parts_mapping(table, binlog_source), name="binlog-statement")
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    assert _backfill(plan).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    confirmed = cdc_stream_active(plan=plan).confirmed_lsn
    # when one session (a privileged one may) writes a captured table with binlog_format=STATEMENT: the binlog
    # holds the statement, no row event
    workload.execute(
        binlog_source,
        "SET SESSION binlog_format = 'STATEMENT'",
        "INSERT INTO parts VALUES (1, 'a', 1)",
        "SET SESSION binlog_format = 'ROW'",
        "INSERT INTO parts VALUES (2, 'b', 2)",
    )
    # then capture stops naming the setting, before the later row: not past the statement with its row left out
    with pytest.raises(binlog.BinlogError, match="binlog_format"):
        cdc_run(plan=plan, until_idle=True)
    assert cdc_stream_active(plan=plan).confirmed_lsn == confirmed
    assert _items(table) == {}
