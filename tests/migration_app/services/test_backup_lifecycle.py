"""Backups at scale, the leftovers (issue 14): restore to a point in time, the plan page's estimate from the cache,
nothing left in DynamoDB that no cleanup knows of (one method per backup, interrupted backups found by name), and
the estimate saying that its item count lags.

moto's RestoreTableToPointInTime copies the source as it is now, whatever the time: these tests prove the checks,
the messages and what the result claims, not DynamoDB's choice of past state. The window is set by a fault hook
on DescribeContinuousBackups (moto's never moves after PITR is switched on).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from lizzy.dynamodb import (
    dynamodb_create_table,
    dynamodb_describe_table,
    dynamodb_list_backups,
    dynamodb_put_item,
    dynamodb_scan_segment,
    get_client,
)
from migration_app.models import Backup, BackupMethod, BackupState
from migration_app.services.backups import (
    ERR_BACKUP_UNFINISHED,
    ERR_PITR_OFF,
    ERR_PITR_OUTSIDE,
    ERR_PITR_SAME_TABLE,
    ERR_PITR_TARGET_EXISTS,
    ERR_PITR_UNSUPPORTED,
    VERIFIED_BY_NOTHING,
    BackupError,
    BackupEstimate,
    backup_estimate_cached,
    backup_orphans,
    backup_restore,
    backup_restore_point_in_time,
    backup_table,
    base,
    export,
    native,
    table_checksum,
)
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from tests.fixtures.dynamodb_hooks import client_error, fault_injection, record_calls
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

ROOT = Path(__file__).resolve().parents[3]
ROWS = 230
ENDPOINT = "AWS DynamoDB (us-east-1)"  # moto stands in for AWS


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no ``except Exception`` sees it."""


@pytest.fixture
def things(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)  # switches point-in-time recovery on (LIZZY_BACKUP_PITR)
        run_execute(run=run_create(context=context), context=context)
    return plan


def _keys(table):
    return sorted(item["PK"] for item in dynamodb_scan_segment(table=table, consistent=True))


def _window(earliest, latest):
    """A fault hook: DescribeContinuousBackups answers this restorable window."""

    def hook(operation, params, send):
        response = send(params)
        if operation == "DescribeContinuousBackups":
            description = response["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            description["EarliestRestorableDateTime"] = earliest
            description["LatestRestorableDateTime"] = latest
        return response

    return hook


# --- 1. restore to a point in time ---------------------------------------------------------------------------


def test_point_in_time_restore_goes_into_a_new_table_at_the_time_asked_and_never_claims_verified(things):
    now = timezone.now()
    when = now - dt.timedelta(minutes=30)
    sent = []

    def window_and_record(operation, params, send):
        if operation == "RestoreTableToPointInTime":
            sent.append(params)
        return _window(now - dt.timedelta(hours=2), now - dt.timedelta(minutes=5))(operation, params, send)

    live_before = _keys("Things")
    with fault_injection(window_and_record):
        result = backup_restore_point_in_time(table="Things", target_table="ThingsAt", when=when)

    assert [(p["SourceTableName"], p["TargetTableName"], p["RestoreDateTime"]) for p in sent] == [
        ("Things", "ThingsAt", when)
    ]
    assert "UseLatestRestorableTime" not in sent[0]
    assert result["verified"] is False  # nothing at that time to compare with
    assert result["verified_by"] == VERIFIED_BY_NOTHING
    assert (result["expected_item_count"], result["expected_checksum"]) == (None, None)
    assert result["item_count"] == ROWS == len(_keys("ThingsAt"))
    assert result["checksum"] == table_checksum(table="ThingsAt").hexdigest()
    assert (result["table"], result["source"], result["point_in_time"]) == ("ThingsAt", "Things", when.isoformat())
    assert _keys("Things") == live_before  # the live table untouched


def test_point_in_time_restore_refuses_the_live_table_and_an_existing_one_before_asking_dynamodb(things):
    dynamodb_put_item(table="Things", item={"PK": "THING#later"})
    before = _keys("Things")
    when = timezone.now()

    with record_calls() as calls, pytest.raises(BackupError) as same:
        backup_restore_point_in_time(table="Things", target_table="Things", when=when)
    assert same.value.message == ERR_PITR_SAME_TABLE.format(
        source="Things", table="Things", when=when.isoformat(), endpoint=ENDPOINT
    )
    assert "RestoreTableToPointInTime" not in [op for op, _ in calls]

    backup_table(table="Things", method="export")
    backup_restore(backup=Backup.objects.get(), target_table="Other")
    with pytest.raises(BackupError) as exists:
        backup_restore_point_in_time(table="Things", target_table="Other", when=None)
    assert exists.value.message == ERR_PITR_TARGET_EXISTS.format(
        source="Things", table="Other", when="latest", endpoint=ENDPOINT
    )
    assert _keys("Things") == before


def test_point_in_time_errors_name_table_time_and_endpoint(db, dynamodb, sqlite_source, settings):
    settings.LIZZY_BACKUP_PITR = False
    plan = plan_save(name="things", source_url=sqlite_source(THINGS_DDL), mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    when = timezone.now() - dt.timedelta(minutes=10)
    names = {"source": "Things", "table": "ThingsAt", "when": when.isoformat(), "endpoint": ENDPOINT}

    # PITR off
    with pytest.raises(BackupError) as off:
        backup_restore_point_in_time(table="Things", target_table="ThingsAt", when=when)
    assert off.value.message == ERR_PITR_OFF.format(**names, status="DISABLED")

    # a time outside the window (checked before the call, and DynamoDB's own refusal when the window moved)
    get_client().update_continuous_backups(
        TableName="Things", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    earliest, latest = when + dt.timedelta(minutes=1), when + dt.timedelta(minutes=5)
    with fault_injection(_window(earliest, latest)), pytest.raises(BackupError) as outside:
        backup_restore_point_in_time(table="Things", target_table="ThingsAt", when=when)
    assert outside.value.message == ERR_PITR_OUTSIDE.format(
        **names, earliest=earliest.isoformat(), latest=latest.isoformat()
    )

    def window_moved(operation, params, send):
        if operation == "RestoreTableToPointInTime":
            raise client_error("InvalidRestoreTimeException", "RestoreDateTime must be within the window", operation)
        return _window(when - dt.timedelta(minutes=1), when + dt.timedelta(minutes=1))(operation, params, send)

    with fault_injection(window_moved), pytest.raises(BackupError, match="outside the restorable window") as moved:
        backup_restore_point_in_time(table="Things", target_table="ThingsAt", when=when)
    assert "Point-in-time restore of Things at " + when.isoformat() in moved.value.message
    assert ENDPOINT in moved.value.message

    # an endpoint without the API
    def without_pitr(operation, params, send):
        if operation in {"DescribeContinuousBackups", "RestoreTableToPointInTime"}:
            raise client_error("UnknownOperationException", "An unknown operation was requested.", operation)
        return send(params)

    with fault_injection(without_pitr), pytest.raises(BackupError) as unsupported:
        backup_restore_point_in_time(table="Things", target_table="ThingsAt", when=when)
    assert unsupported.value.message == ERR_PITR_UNSUPPORTED.format(**names, code="UnknownOperationException")
    assert dynamodb_describe_table(table="ThingsAt") is None  # nothing restored by any of them


def test_restore_table_command_restores_to_a_point_in_time(things, capsys):
    call_command("restore_table", "--point-in-time", "Things", "--time", "latest", "--target-table", "ThingsAt")
    result = json.loads(capsys.readouterr().out)

    assert (result["method"], result["verified"], result["item_count"]) == ("point_in_time", False, ROWS)
    assert result["verified_by"] == VERIFIED_BY_NOTHING
    with pytest.raises(CommandError, match="a new table: a point-in-time restore never writes over TABLE"):
        call_command("restore_table", "--point-in-time", "Things", "--time", "latest")
    with pytest.raises(CommandError, match="not an ISO 8601 date and time"):
        call_command("restore_table", "--point-in-time", "Things", "--time", "yesterday", "--target-table", "X")
    with pytest.raises(CommandError, match="never writes over the live table"):
        call_command("restore_table", "--point-in-time", "Things", "--time", "latest", "--target-table", "Things")


# --- 2. the plan page shows a cached estimate, and its age; it never Scans -----------------------------------


def test_the_plan_page_never_scans_and_shows_the_estimate_with_its_age(things, ops_admin_client):
    page = reverse("admin:migration_app_migrationplan_change", args=[things.pk])

    with record_calls() as calls:
        first = ops_admin_client.get(page).content.decode()
    assert [op for op, _ in calls].count("Scan") == 0
    assert "Things: not estimated in the last" in first

    with record_calls() as calls:
        ops_admin_client.post(reverse("admin:migration_app_migrationplan_console", args=[things.pk, "estimate"]))
    assert [op for op, _ in calls].count("Scan") == 1  # the one 200-item sample page of the one target table

    with record_calls() as calls:
        second = ops_admin_client.get(page).content.decode()
        ops_admin_client.get(page)
    assert [op for op, _ in calls].count("Scan") == 0
    assert "Things: about 230 items" in second
    assert re.search(r"\[estimated \d+ s ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\]", second)


def test_the_estimate_says_how_old_it_is():
    estimate = BackupEstimate(
        table="T",
        items=1,
        table_bytes=1,
        export_bytes=1,
        export_seconds=0.0,
        segments=4,
        sample_items=1,
        taken_at=dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC),
    )

    assert estimate.age_text(now=dt.datetime(2026, 12, 1, 23, 7, tzinfo=dt.UTC)) == (
        "estimated 7 min ago (2026-12-01 23:00:00 UTC)"
    )
    assert estimate.age_text(now=dt.datetime(2026, 12, 1, 23, 0, 45, tzinfo=dt.UTC)).startswith("estimated 45 s ago")


# --- 3. one method per backup; deleting a backup deletes what it made ----------------------------------------


def test_an_export_takes_no_on_demand_copy_that_nothing_would_delete(things):
    with record_calls() as calls:
        backup = backup_table(table="Things", method="export")

    assert backup.method == BackupMethod.EXPORT
    assert "CreateBackup" not in [op for op, _ in calls]
    assert dynamodb_list_backups(table="Things") == []


def test_deleting_a_backup_in_the_admin_deletes_its_on_demand_backup_and_its_export(things, ops_admin_client):
    native_backup = backup_table(table="Things", method="native")
    exported = backup_table(table="Things", method="export")
    assert len(dynamodb_list_backups(table="Things")) == 1
    assert Path(exported.location).is_file()

    response = ops_admin_client.post(
        reverse("admin:migration_app_backup_changelist"),
        {"action": "delete_selected", "_selected_action": [native_backup.pk, exported.pk], "post": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    assert not Backup.objects.exists()
    assert dynamodb_list_backups(table="Things") == []  # not billed on after its record is gone
    assert not Path(exported.location).exists()
    assert native_backup.aws_backup_arn in response.content.decode()


# --- 4. a kill between CreateBackup and the record -----------------------------------------------------------


def test_a_kill_after_create_backup_leaves_a_record_that_finds_the_backup(things, monkeypatch, capsys):
    def killed(**_kwargs):
        raise Killed

    monkeypatch.setattr(native, "dynamodb_describe_backup", killed)  # right after CreateBackup answered
    with pytest.raises(Killed):
        backup_table(table="Things", method="native")
    monkeypatch.undo()

    left = dynamodb_list_backups(table="Things")
    record = Backup.objects.get()
    assert len(left) == 1  # CreateBackup ran: one on-demand backup, billed
    assert (record.state, record.aws_backup_arn) == (BackupState.TAKING, "")
    assert left[0]["BackupName"] == record.backup_name  # the record named it before the call

    orphans = backup_orphans()
    assert [(o.backup.pk, o.aws_backup_arn) for o in orphans] == [(record.pk, left[0]["BackupArn"])]
    with pytest.raises(BackupError) as refused:
        backup_restore(backup=record, target_table="ThingsRestored")
    assert refused.value.message == ERR_BACKUP_UNFINISHED.format(
        id=record.pk, table="Things", at=f"{record.created_at:%Y-%m-%d %H:%M:%S}"
    )

    call_command("backup_table", "--orphans")
    out = capsys.readouterr().out
    assert f"backup #{record.pk} (native, name {record.backup_name})" in out
    assert "never finished (may still be running); it left on-demand backup " + left[0]["BackupArn"] in out

    call_command("backup_table", "--orphans", "--delete")  # younger than 24 h: may still be running
    assert Backup.objects.count() == 1
    call_command("backup_table", "--orphans", "--delete", "--older-than", "0")
    assert "1 unfinished backup(s) deleted." in capsys.readouterr().out
    assert (Backup.objects.count(), dynamodb_list_backups(table="Things")) == (0, [])


def test_a_kill_mid_export_leaves_a_record_naming_the_partial_file(things, monkeypatch):
    real_scan = export.dynamodb_parallel_scan

    def scan_then_killed(**kwargs):
        kwargs["consume"]([{"PK": "THING#partial"}])
        raise Killed

    monkeypatch.setattr(export, "dynamodb_parallel_scan", scan_then_killed)
    with pytest.raises(Killed):
        backup_table(table="Things", method="export")
    monkeypatch.setattr(export, "dynamodb_parallel_scan", real_scan)

    (orphan,) = backup_orphans(table="Things")
    assert orphan.location
    assert Path(orphan.location).read_text().count("\n") == 1
    call_command("backup_table", "Things", "--orphans", "--delete", "--older-than", "0")
    assert not Path(orphan.location).exists()
    assert not Backup.objects.exists()


def test_an_error_after_create_backup_leaves_neither_record_nor_on_demand_backup(things, monkeypatch):
    def checksum_fails(**_kwargs):
        raise BackupError("the count and checksum Scan failed")

    monkeypatch.setattr(native, "table_checksum", checksum_fails)
    with pytest.raises(BackupError):
        backup_table(table="Things", method="native")

    assert not Backup.objects.exists()
    assert dynamodb_list_backups(table="Things") == []


def test_an_on_demand_backup_no_record_names_is_listed_but_never_deleted(things, capsys):
    backup_table(table="Things", method="native")
    by_hand = get_client().create_backup(TableName="Things", BackupName="by-hand")["BackupDetails"]["BackupArn"]

    (orphan,) = backup_orphans()
    assert (orphan.backup, orphan.aws_backup_arn) == (None, by_hand)
    call_command("backup_table", "--orphans", "--delete", "--older-than", "0")
    out = capsys.readouterr().out
    assert "is named by no backup record here" in out
    assert f"aws dynamodb delete-backup --backup-arn {by_hand}" in out
    assert len(dynamodb_list_backups(table="Things")) == 2  # ours (recorded) and the one by hand, both kept


# --- 5. the estimate says its item count lags -----------------------------------------------------------------


def test_the_estimate_says_its_item_count_is_approximate_and_lags_where_shown(things, capsys, ops_admin_client):
    lag = "approximate: DescribeTable's ItemCount and TableSizeBytes, which DynamoDB updates about every 6 hours"

    call_command("backup_table", "Things", "--estimate")
    ops_admin_client.post(reverse("admin:migration_app_migrationplan_console", args=[things.pk, "estimate"]))
    console = ops_admin_client.get(reverse("admin:migration_app_migrationplan_change", args=[things.pk]))

    assert lag in capsys.readouterr().out
    assert lag.replace("'", "&#x27;") in console.content.decode()


def test_a_backup_goes_on_when_the_estimate_cache_is_away(things, monkeypatch):
    class Away:
        def set(self, *args, **kwargs):
            raise ConnectionError("Redis away")

        get = set

    monkeypatch.setattr(base, "cache", Away())

    backup = backup_table(table="Things", method="export")

    assert (backup.state, backup.item_count) == (BackupState.DONE, ROWS)
    assert backup_estimate_cached(table="Things") is None  # shown as not estimated


@pytest.mark.integration
def test_a_backup_process_sigkilled_after_create_backup_leaves_what_the_next_command_finds(tmp_path, live_dynamodb):
    # given a table on a real HTTP endpoint and a control database, shared by three processes
    table = f"Killed{uuid.uuid4().hex[:8]}"
    dynamodb_create_table(
        table=table,
        definition={
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    dynamodb_put_item(table=table, item={"PK": "k#1"})
    control = tmp_path / "control.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.test",
        "DATABASE_URL": f"sqlite:///{control}",
        "AWS_ENDPOINT_URL_DYNAMODB": live_dynamodb,
        "LIZZY_BACKUP_DIR": str(tmp_path / "backups"),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    marker = tmp_path / "blocked"

    # when the backup is SIGKILLed once CreateBackup has been done by DynamoDB, before its answer is used
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.migration_app.killable_command", str(marker), "CreateBackup", "--"]
        + ["backup_table", table, "--method", "native"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the backup never reached CreateBackup"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    (left,) = dynamodb_list_backups(table=table)  # one on-demand backup, billed

    # then the next command finds it by the name its record carried, and deletes it with the record
    def manage(*args):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    listed = manage("backup_table", "--orphans")
    assert f"name {left['BackupName']}) was recorded at" in listed
    assert f"it left on-demand backup {left['BackupArn']}" in listed
    assert left["BackupName"].startswith("lizzy-1-")
    assert "1 unfinished backup(s) deleted." in manage("backup_table", "--orphans", "--delete", "--older-than", "0")
    assert dynamodb_list_backups(table=table) == []
    assert "0 orphan(s)." in manage("backup_table", "--orphans")


def test_without_redis_the_admin_shows_the_estimate_from_the_database_cache(things, ops_admin_client, settings):
    # given the shared cache as configured without REDIS_URL: Django's database (lizzy migration 0003's table)
    settings.CACHES = {
        **settings.CACHES,
        settings.SHARED_CACHE: {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "lizzy_shared_cache",
        },
    }
    page = reverse("admin:migration_app_migrationplan_change", args=[things.pk])
    assert "Things: not estimated in the last" in ops_admin_client.get(page).content.decode()
    # when an estimate is taken
    ops_admin_client.post(reverse("admin:migration_app_migrationplan_console", args=[things.pk, "estimate"]))
    # then the table holds it and the page shows it without a Scan
    assert backup_estimate_cached(table="Things").items == ROWS
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM lizzy_shared_cache WHERE cache_key LIKE %s", ["%backup-estimate:Things:%"])
        assert cursor.fetchone() == (1,)
    with record_calls() as calls:
        shown = ops_admin_client.get(page).content.decode()
    assert [op for op, _ in calls].count("Scan") == 0
    assert "Things: about 230 items" in shown
