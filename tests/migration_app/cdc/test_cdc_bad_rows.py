"""Bad rows and key collisions during change capture, on the real PostgreSQL: quarantined once, capture goes on
up to the plan's max_bad_rows, stops past it naming the change; a kill between quarantine and confirm adds
nothing twice; a collision within a batch is caught, one across batches makes validation unclean."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.db import connections as django_connections
from django.test import Client

from lizzy.dynamodb import dynamodb_scan_segment
from migration_app.cdc.apply import CdcApplyError
from migration_app.cdc.worker import CdcBusy, cdc_run
from migration_app.models import CdcStream, Phase, QuarantinedRow
from migration_app.selectors import quarantine_lines
from migration_app.services.phases import PhaseGuardFailed, phase_guard, plan_advance
from migration_app.services.plans import plan_save
from migration_app.services.validation import plan_validate
from tests.fixtures.dynamodb_hooks import client_error, fault_injection
from tests.migration_app.cdc.workload import plan_backfilled_and_caught_up

ROOT = Path(__file__).resolve().parents[3]
BIG = "x" * 500_000  # one text column over DynamoDB's 400 KB item limit

pytestmark = pytest.mark.integration


@pytest.fixture
def cdc_db(transactional_db) -> None:
    """No test transaction: creating a slot waits for every transaction on the server (test_cdc_end_to_end)."""


def _mapping(table: str, collisions: str = "error") -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "parts",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": "public", "table-name": "parts"},
                "target-table-name": table,
                "key-collisions": collisions,
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "SKU#${sku}"}
                    ],
                },
            }
        ]
    }


PARTS = (
    "CREATE TABLE parts (id integer PRIMARY KEY, sku text, qty integer NOT NULL, note text)",
    "INSERT INTO parts VALUES (1, 'a', 1, NULL), (2, 'b', 1, NULL)",
)


def _ready_plan(url: str, name: str, *, max_bad_rows: int, collisions: str = "error", source: tuple = PARTS):
    """Rows 1 (sku a) and 2 (sku b) backfilled; the plan in parallel, its worker caught up."""
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    _source(url, *source)
    plan = plan_save(
        name=name, source_url=url, mapping=_mapping(table, collisions), cdc=True, max_bad_rows=max_bad_rows
    )
    plan_backfilled_and_caught_up(plan)
    return plan, table


def _items(table: str) -> dict[str, int]:
    """Item key → the source row id it holds."""
    return {item["PK"]: int(item["id"]) for item in dynamodb_scan_segment(table=table, consistent=True)}


def _source(url: str, *statements: str | tuple[str, list]) -> None:
    """Each statement in a transaction of its own: (sql, params) or sql."""
    with psycopg.connect(url, autocommit=True) as db:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, None)
            db.execute(sql, params)


def _admin(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _quarantined(plan) -> list[tuple[dict, str, str]]:
    return [
        (row.source_key, row.change, row.reason)
        for row in QuarantinedRow.objects.filter(plan=plan, stream__isnull=False).order_by("id")
    ]


def test_a_bad_row_is_quarantined_once_and_the_changes_after_it_arrive(cdc_db, dynamodb, cdc_source, admin_user):
    plan, table = _ready_plan(cdc_source, "bad-insert", max_bad_rows=5)
    # given a row whose key attribute is built from a NULL column, between good changes
    _source(
        cdc_source,
        "INSERT INTO parts VALUES (3, 'c', 1, NULL)",
        "INSERT INTO parts VALUES (4, NULL, 1, NULL)",
        "INSERT INTO parts VALUES (5, 'e', 1, NULL)",
    )

    outcome = cdc_run(plan=plan, until_idle=True)

    assert outcome.stopped == ""
    assert outcome.quarantined == 1
    assert _items(table) == {"SKU#a": 1, "SKU#b": 2, "SKU#c": 3, "SKU#e": 5}
    [row] = QuarantinedRow.objects.filter(plan=plan)
    stream = CdcStream.objects.get(plan=plan)
    assert (row.run_id, row.stream_id, row.change, row.source_key) == (None, stream.pk, "insert", {"id": 4})
    assert row.source_table == "public.parts"
    assert row.rule == "parts"
    assert row.target_table == table
    assert "NULL" in row.reason
    assert "sku" in row.reason
    assert row.commit_lsn
    assert row.row["id"] == 4
    assert '"change": "insert"' in next(quarantine_lines(rows=QuarantinedRow.objects.filter(pk=row.pk)))
    # the admin's quarantine list says where it came from; the plan page counts it against the allowance
    client = _admin(admin_user)
    listing = client.get("/admin/migration_app/quarantinedrow/").content.decode()
    assert f"change capture: insert committed at {row.commit_lsn}" in listing
    page = client.get(f"/admin/migration_app/migrationplan/{plan.pk}/change/").content.decode()
    assert "1 row(s) quarantined (of 5 allowed)" in page
    # when more changes come, the bad one is not quarantined again and capture goes on
    _source(cdc_source, "INSERT INTO parts VALUES (6, 'f', 1, NULL)")
    assert cdc_run(plan=plan, until_idle=True).quarantined == 0
    assert _items(table)["SKU#f"] == 6
    assert QuarantinedRow.objects.filter(plan=plan).count() == 1


@contextlib.contextmanager
def _worker_running(plan):
    """The CDC worker in a thread, as in production while a validation runs (the validation follows the keys
    it finds different until the worker has applied the source's changes: a stopped worker leaves them
    unsettled, tests/migration_app/cdc/test_cdc_validation.py)."""
    stopping, errors = threading.Event(), []

    def work():
        try:
            while not stopping.is_set():
                cdc_run(plan=plan, max_seconds=0.5, poll_seconds=0.02)
        except BaseException as exc:  # re-raised below
            errors.append(exc)
        finally:
            django_connections.close_all()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(timeout=60)
    if errors:
        raise errors[0]


def test_a_bad_update_deletes_the_old_item_and_validation_reports_the_row_missing(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "bad-update", max_bad_rows=5)
    # given updates that make rows bad: a NULL key attribute, an item over 400 KB (same key)
    _source(cdc_source, "UPDATE parts SET sku = NULL WHERE id = 1", ("UPDATE parts SET note = %s WHERE id = 2", [BIG]))

    cdc_run(plan=plan, until_idle=True)

    # then neither old item is served any more: the target holds no value the source no longer has
    assert _items(table) == {}
    quarantined = _quarantined(plan)
    assert [(key, change) for key, change, _reason in quarantined] == [({"id": 1}, "update"), ({"id": 2}, "update")]
    assert "400 KB" in quarantined[1][2]
    with _worker_running(plan):
        report = plan_validate(plan=plan)
    # row 1 can no longer become an item (named with its reason), row 2's item is missing; nothing in flight
    assert (report.missing, report.extra, report.unsettled, report.clean) == (2, 0, 0, False)
    # a later good update writes the item again
    _source(cdc_source, "UPDATE parts SET note = NULL WHERE id = 2")
    cdc_run(plan=plan, until_idle=True)
    assert _items(table) == {"SKU#b": 2}


def test_past_max_bad_rows_capture_stops_naming_the_change_and_resumes_once_allowed(
    cdc_db, dynamodb, cdc_source, admin_user
):
    plan, table = _ready_plan(cdc_source, "allowance", max_bad_rows=1)
    confirmed = CdcStream.objects.get(plan=plan).confirmed_lsn
    _source(
        cdc_source,
        "INSERT INTO parts VALUES (3, NULL, 1, NULL)",
        "UPDATE parts SET qty = 2 WHERE id = 3",  # still bad: a second record, the same row
        "INSERT INTO parts VALUES (4, NULL, 1, NULL)",
        "INSERT INTO parts VALUES (5, 'e', 1, NULL)",
    )

    with pytest.raises(CdcApplyError) as raised:
        cdc_run(plan=plan, until_idle=True)

    # the error names plan, table, rule, source key and LSN of the change that went over
    message = raised.value.message
    over = QuarantinedRow.objects.filter(plan=plan).order_by("id")[2]
    assert over.source_key == {"id": 4}
    assert "2 source row(s) quarantined by change capture (3 change(s))" in message
    assert "max_bad_rows (1)" in message
    assert f"confirmed up to {confirmed} (not past this batch)" in message
    for part in ("plan allowance", "table public.parts", "rule parts", "source key {'id': 4}", over.commit_lsn):
        assert part in message, part
    stream = CdcStream.objects.get(plan=plan)
    assert stream.confirmed_lsn == confirmed  # not confirmed past the batch
    assert stream.last_error == message
    # started again: stopped again at the same change, nothing quarantined twice
    with pytest.raises(CdcApplyError):
        cdc_run(plan=plan, until_idle=True)
    assert QuarantinedRow.objects.filter(plan=plan).count() == 3
    # once the plan allows more, capture goes on from there
    page = _admin(admin_user).get(f"/admin/migration_app/migrationplan/{plan.pk}/change/").content.decode()
    assert "2 row(s) quarantined (of 1 allowed)" in page  # source rows, as the allowance counts: not 3 changes
    plan.max_bad_rows = 2
    plan.save(update_fields=["max_bad_rows"])
    assert cdc_run(plan=plan, until_idle=True).quarantined == 0
    assert QuarantinedRow.objects.filter(plan=plan).count() == 3
    assert _items(table)["SKU#e"] == 5
    assert CdcStream.objects.get(plan=plan).confirmed_lsn != confirmed


def test_an_item_over_400_kb_in_a_batch_of_good_changes_sets_aside_only_that_row(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "too-large", max_bad_rows=1)
    _source(
        cdc_source,
        "INSERT INTO parts SELECT n, 's' || n, 1, NULL FROM generate_series(10, 69) AS n",  # 60 rows: 3 chunks
        ("INSERT INTO parts VALUES (70, 'big', 1, %s)", [BIG]),
        "INSERT INTO parts SELECT n, 's' || n, 1, NULL FROM generate_series(71, 99) AS n",
        "DELETE FROM parts WHERE id = 2",
    )

    outcome = cdc_run(plan=plan, until_idle=True)

    items = _items(table)
    assert sorted(items.values()) == [1, *range(10, 70), *range(71, 100)]
    assert outcome.quarantined == 1
    [(key, change, reason)] = _quarantined(plan)
    assert (key, change) == ({"id": 70}, "insert")
    assert "409600 bytes (400 KB)" in reason
    [row] = QuarantinedRow.objects.filter(plan=plan)
    assert row.row["note"].endswith("…")
    assert len(row.row["note"]) < 3000


def test_an_item_dynamodb_refuses_at_write_is_set_aside_and_the_batch_written(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "refused", max_bad_rows=1)
    _source(cdc_source, "INSERT INTO parts VALUES (3, 'c', 1, 'refuse me'), (4, 'd', 1, NULL)")

    def hook(operation, params, send):
        requests = params.get("RequestItems", {}).get(table, [])
        items = [request["PutRequest"]["Item"] for request in requests if "PutRequest" in request]
        if operation == "PutItem":
            items = [params["Item"]]
        if any(item.get("note", {}).get("S") == "refuse me" for item in items):
            raise client_error("ValidationException", "One or more parameter values were invalid", operation)
        return send(params)

    with fault_injection(hook):
        cdc_run(plan=plan, until_idle=True)

    assert _items(table) == {"SKU#a": 1, "SKU#b": 2, "SKU#d": 4}
    [(key, change, reason)] = _quarantined(plan)
    assert (key, change) == ({"id": 3}, "insert")
    assert reason.startswith("DynamoDB refused the item")


def test_two_rows_on_one_item_key_within_a_batch_quarantine_the_later_naming_both(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "collide", max_bad_rows=5)
    _source(
        cdc_source,
        "INSERT INTO parts VALUES (3, 'x', 1, NULL), (4, 'x', 1, NULL)",  # 4 collides with 3
        "UPDATE parts SET sku = 'z' WHERE id = 1",  # a key change frees SKU#a ...
        "INSERT INTO parts VALUES (5, 'a', 1, NULL)",  # ... for another row: no collision
        "DELETE FROM parts WHERE id = 2",  # a delete frees SKU#b ...
        "INSERT INTO parts VALUES (6, 'b', 1, NULL)",  # ... likewise
        "UPDATE parts SET id = 7 WHERE id = 6",  # the same row under a new source key: no collision
        "DELETE FROM parts WHERE id = 4",  # row 4's delete must not remove row 3's item
    )

    outcome = cdc_run(plan=plan, until_idle=True)

    assert _items(table) == {"SKU#x": 3, "SKU#z": 1, "SKU#a": 5, "SKU#b": 7}
    assert outcome.quarantined == 2
    (put_key, put_change, put_reason), (del_key, del_change, del_reason) = _quarantined(plan)
    assert (put_key, put_change, del_key, del_change) == ({"id": 4}, "insert", {"id": 4}, "delete")
    assert "{'PK': 'SKU#x'}" in put_reason
    assert "{'id': 3} (written first) and {'id': 4}" in put_reason
    assert "row {'id': 3} wrote it earlier in the same batch" in del_reason


def test_collisions_of_rows_with_a_composite_source_key_name_both_keys(cdc_db, dynamodb, cdc_source):
    composite = (
        "CREATE TABLE parts (region text, id integer, sku text, qty integer NOT NULL, PRIMARY KEY (region, id))",
        "INSERT INTO parts VALUES ('eu', 1, 'a', 1)",
    )
    plan, table = _ready_plan(cdc_source, "composite", max_bad_rows=5, source=composite)
    _source(
        cdc_source,
        "INSERT INTO parts VALUES ('us', 2, 'x', 1), ('ap', 2, 'x', 1)",  # ('ap', 2) collides with ('us', 2)
        "UPDATE parts SET region = 'eu' WHERE region = 'us' AND id = 2",  # the same row under a new source key
    )

    cdc_run(plan=plan, until_idle=True)

    [item] = [item for item in dynamodb_scan_segment(table=table, consistent=True) if item["PK"] == "SKU#x"]
    assert (item["region"], item["id"]) == ("eu", 2)
    [(key, change, reason)] = _quarantined(plan)
    assert (key, change) == ({"region": "ap", "id": 2}, "insert")
    assert "{'region': 'us', 'id': 2} (written first) and {'region': 'ap', 'id': 2}" in reason


def test_a_collision_within_a_batch_past_the_allowance_stops_capture_naming_both_rows(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "collide-stop", max_bad_rows=0)
    _source(cdc_source, "INSERT INTO parts VALUES (3, 'x', 1, NULL), (4, 'x', 1, NULL)")

    with pytest.raises(CdcApplyError, match=r"source key \{'id': 4\}.*\{'id': 3\} \(written first\)"):
        cdc_run(plan=plan, until_idle=True)


def test_under_last_wins_the_later_change_wins_and_nothing_is_quarantined(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "last-wins", max_bad_rows=0, collisions="last-wins")
    _source(cdc_source, "INSERT INTO parts VALUES (3, 'x', 1, NULL), (4, 'x', 1, NULL)")

    cdc_run(plan=plan, until_idle=True)

    assert _items(table)["SKU#x"] == 4
    assert not QuarantinedRow.objects.filter(plan=plan).exists()


def test_a_collision_across_batches_makes_validation_unclean_and_blocks_cutover(cdc_db, dynamodb, cdc_source):
    # given row 3 inserted with row 1's item key in a later batch than row 1's item (the backfill wrote it)
    plan, table = _ready_plan(cdc_source, "collide-later", max_bad_rows=0)
    _source(cdc_source, "INSERT INTO parts VALUES (3, 'a', 1, NULL)")

    outcome = cdc_run(plan=plan, until_idle=True)

    # then the worker cannot tell (no read per put): the later row's item overwrote the earlier one ...
    assert (outcome.stopped, outcome.quarantined) == ("", 0)
    assert _items(table) == {"SKU#a": 3, "SKU#b": 2}
    # ... and validation's count reconciliation reports it: 3 rows selected, 2 items; cutover refused
    with _worker_running(plan):
        report = plan_validate(plan=plan)
    assert report.count_mismatches == 1
    assert not report.clean
    plan_advance(plan=plan, to_phase=Phase.VALIDATE, actor="test")
    with pytest.raises(PhaseGuardFailed, match="Cutover needs a clean validation"):
        phase_guard(plan=plan, to_phase=Phase.CUTOVER)


def _env(dynamodb_url: str) -> dict[str, str]:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "LIZZY_CDC_LEASE_SECONDS": "2",
    }


def test_a_worker_sigkilled_between_quarantine_and_confirm_quarantines_the_row_once(
    transactional_db, live_dynamodb, cdc_source, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("the worker subprocess needs Django's database on a server (DATABASE_URL=postgres://...)")
    settings.LIZZY_CDC_LEASE_SECONDS = 2
    plan, table = _ready_plan(cdc_source, "killed-quarantine", max_bad_rows=1)
    confirmed = CdcStream.objects.get(plan=plan).confirmed_lsn
    _source(cdc_source, "INSERT INTO parts VALUES (3, NULL, 1, NULL)", "INSERT INTO parts VALUES (4, 'd', 1, NULL)")

    # when a worker is SIGKILLed after it quarantined the row and before it advanced the slot
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

    # then the next worker (once the dead one's lease expired) decodes the change again: still one row
    deadline = time.monotonic() + 30
    while True:
        try:
            outcome = cdc_run(plan=plan, until_idle=True)
            break
        except CdcBusy:
            assert time.monotonic() < deadline, "the killed worker's lease never expired"
            time.sleep(0.2)
    assert outcome.stopped == ""
    assert outcome.quarantined == 0
    assert QuarantinedRow.objects.filter(plan=plan).count() == 1
    assert _items(table) == {"SKU#a": 1, "SKU#b": 2, "SKU#d": 4}
    assert CdcStream.objects.get(plan=plan).confirmed_lsn != confirmed
