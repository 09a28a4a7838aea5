"""Backups at scale (issue 14): a method per backup (native CreateBackup or the export), the expected time, size
and method shown before starting, and "verified" only when an exact count and checksum taken at backup time match.

Faults are injected where the product could lie: a restored copy that lost an item, a corrupted record, an
endpoint without CreateBackup, two restores racing for one table name, a rollback onto a table that exists.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from moto.dynamodb.models import DynamoDBBackend

from lizzy.dynamodb import (
    dynamodb_batch_write,
    dynamodb_create_table,
    dynamodb_delete_item,
    dynamodb_delete_table,
    dynamodb_describe_table,
    dynamodb_enable_ttl,
    dynamodb_list_tables,
    dynamodb_point_in_time_recovery,
    dynamodb_put_item,
    dynamodb_scan_segment,
    dynamodb_ttl_attribute,
    dynamodb_wait_until_active,
    get_client,
)
from lizzy.errors import ValidationFailed
from migration_app.models import Backup, BackupMethod, Phase
from migration_app.services import phases
from migration_app.services.backups import (
    ERR_NATIVE_GONE,
    ERR_NATIVE_TARGET_EXISTS,
    VERIFIED_BY_APPROXIMATE,
    VERIFIED_BY_CHECKSUM,
    BackupError,
    backup_choose,
    backup_restore,
    backup_table,
    native,
    table_checksum,
)
from migration_app.services.phases import PhaseGuardFailed, plan_advance, plan_rollback
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from tests.fixtures.dynamodb_hooks import client_error, fault_injection, record_calls
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

ROWS = 230


@pytest.fixture
def things(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(ROWS)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    return plan


@pytest.fixture
def too_long_to_export(settings):
    """Any export is expected to take longer than the limit (the estimate of 230 items is above 0 s)."""
    settings.LIZZY_BACKUP_EXPORT_MAX_SECONDS = 0


def _items(table):
    return sorted(dynamodb_scan_segment(table=table, consistent=True), key=lambda item: repr(sorted(item.items())))


def _without_create_backup(operation, params, send):
    if operation in {"CreateBackup", "UpdateContinuousBackups", "DescribeContinuousBackups"}:
        raise client_error("UnknownOperationException", "An unknown operation was requested.", operation)
    return send(params)


# --- the method, chosen per backup ---------------------------------------------------------------------------


def test_auto_takes_the_export_for_a_small_table(things):
    backup = backup_table(table="Things")

    assert backup.method == BackupMethod.EXPORT
    assert len(Path(backup.location).read_text().splitlines()) == backup.item_count == ROWS
    assert backup.checksum == table_checksum(table="Things").hexdigest()


def test_auto_takes_a_native_backup_without_scanning_when_the_export_would_take_too_long(
    things, too_long_to_export, settings
):
    with record_calls() as calls:
        backup = backup_table(table="Things")

    assert backup.method == BackupMethod.NATIVE
    assert backup.aws_backup_arn
    assert backup.location == ""
    assert (backup.item_count, backup.checksum) == (None, "")  # not counted: the restore will say so
    assert backup.native_details["approximate_item_count"] == ROWS  # moto's ItemCount is exact; AWS's is not
    assert backup.native_details["backup_status"] == "AVAILABLE"
    assert [op for op, _ in calls].count("Scan") == 1  # the estimate's one 200-item sample page, nothing more
    assert not list(Path(settings.LIZZY_BACKUP_DIR).rglob("*.jsonl"))


def test_the_choice_says_method_why_time_and_size_before_starting(things, too_long_to_export):
    choice = backup_choose(table="Things")

    assert (choice.method, choice.checksummed) == ("native", False)
    assert "about 230 items" in choice.text()
    assert "Method: native (auto: the export would take about" in choice.text()
    assert "not verified" in choice.text()
    with pytest.raises(ValidationFailed, match="Unknown backup method 'fast'"):
        backup_choose(table="Things", method="fast")


def test_a_limit_of_zero_never_scans_even_a_table_estimated_empty(db, dynamodb, settings):
    """ItemCount lags by hours on AWS: a freshly filled table reads as empty. A limit of 0 must still mean no Scan."""
    dynamodb_create_table(
        table="LooksEmpty",
        definition={
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    settings.LIZZY_BACKUP_EXPORT_MAX_SECONDS = 0

    assert backup_choose(table="LooksEmpty").estimate.export_seconds == 0
    assert (
        backup_choose(table="LooksEmpty").method,
        backup_choose(table="LooksEmpty", method="native").checksummed,
    ) == (
        "native",
        False,
    )
    settings.LIZZY_BACKUP_EXPORT_MAX_SECONDS = 300
    assert backup_choose(table="LooksEmpty").method == "export"


# --- native round trips: verified only by an exact count and checksum ---------------------------------------


def test_native_backup_restores_into_a_new_table_verified_by_count_and_checksum(things):
    backup = backup_table(table="Things", method="native")
    dynamodb_put_item(table="Things", item={"PK": "THING#later", "name": "written after the backup"})

    result = backup_restore(backup=backup, target_table="ThingsRestored")

    assert backup.method == BackupMethod.NATIVE
    assert backup.item_count == ROWS
    assert result["verified"] is True
    assert result["verified_by"] == VERIFIED_BY_CHECKSUM
    assert (result["item_count"], result["checksum"]) == (ROWS, backup.checksum)
    assert len(_items("ThingsRestored")) == ROWS  # the backup's state, not the table's later one
    assert "THING#later" not in {item["PK"] for item in _items("ThingsRestored")}


def test_native_round_trip_of_a_composite_key_table_with_a_gsi_ttl_and_awkward_values(db, dynamodb):
    definition = {
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "N"},
            {"AttributeName": "email", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-email",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    dynamodb_create_table(table="Composite", definition=definition)
    dynamodb_wait_until_active(table="Composite")
    dynamodb_enable_ttl(table="Composite", attribute="expires_at")
    items = [
        {"PK": "A", "SK": 1, "nothing": None, "big": 12345678901234567890123456789012345678, "blob": b"\x00\xff"},
        {"PK": "A", "SK": 2, "email": "someone@example.invalid", "expires_at": 4102444800},
        {"PK": "B", "SK": -1, "nested": {"list": [1, "two", None], "set": {"x", "y"}}},
    ]
    dynamodb_batch_write(table="Composite", items=items, key_names=("PK", "SK"))

    backup = backup_table(table="Composite", method="native")
    result = backup_restore(backup=backup, target_table="CompositeRestored")

    assert result["verified"] is True
    assert result["item_count"] == 3
    assert _items("CompositeRestored") == _items("Composite")
    described = dynamodb_describe_table(table="CompositeRestored")
    assert [key["AttributeName"] for key in described["KeySchema"]] == ["PK", "SK"]
    assert [index["IndexName"] for index in described["GlobalSecondaryIndexes"]] == ["by-email"]
    assert dynamodb_ttl_attribute(table="CompositeRestored") == "expires_at"  # DynamoDB does not restore TTL


def test_native_round_trip_over_a_real_http_endpoint(db, live_dynamodb):
    table = f"Http{uuid.uuid4().hex[:10]}"  # the HTTP endpoint is shared by the session: a name of its own
    dynamodb_create_table(
        table=table,
        definition={
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    dynamodb_batch_write(table=table, items=[{"PK": f"k#{n}", "n": n} for n in range(60)], key_names=("PK",))
    try:
        backup = backup_table(table=table, method="native")
        result = backup_restore(backup=backup, target_table=f"{table}R")

        assert backup.native_details["backup_created_at"]  # a datetime over the wire, stored as ISO 8601
        assert result["verified"] is True
        assert result["item_count"] == 60
        assert _items(f"{table}R") == _items(table)
    finally:
        for name in (table, f"{table}R"):
            if dynamodb_describe_table(table=name):
                dynamodb_delete_table(table=name)


def test_a_restored_copy_that_lost_an_item_is_reported_not_verified_with_the_numbers(things, monkeypatch):
    backup = backup_table(table="Things", method="native")
    real_wait = native.dynamodb_wait_until_active

    def wait_then_lose_an_item(*, table, timeout_seconds):
        real_wait(table=table, timeout_seconds=timeout_seconds)
        dynamodb_delete_item(table=table, key={"PK": "THING#7"})

    monkeypatch.setattr(native, "dynamodb_wait_until_active", wait_then_lose_an_item)

    with pytest.raises(BackupError, match="NOT verified") as raised:
        backup_restore(backup=backup, target_table="ThingsRestored")

    details = raised.value.details
    assert (details["item_count"], details["expected_item_count"]) == (ROWS - 1, ROWS)
    assert details["checksum"] != details["expected_checksum"] == backup.checksum
    assert f"holds {ROWS - 1} items" in raised.value.message
    assert f"found {ROWS} items" in raised.value.message
    assert len(_items("ThingsRestored")) == ROWS - 1  # left as restored, for inspection


def test_a_corrupted_record_is_never_reported_verified(things):
    backup = backup_table(table="Things", method="native")
    Backup.objects.filter(pk=backup.pk).update(item_count=ROWS + 1)
    backup.refresh_from_db()

    with pytest.raises(BackupError, match=f"a Scan found {ROWS + 1} items"):
        backup_restore(backup=backup, target_table="ThingsRestored")


def test_a_native_backup_without_a_checksum_is_restored_but_never_called_verified(things, too_long_to_export):
    backup = backup_table(table="Things")
    dynamodb_delete_item(table="Things", key={"PK": "THING#1"})  # after the backup: the backup keeps it

    result = backup_restore(backup=backup, target_table="ThingsRestored")

    assert result["verified"] is False
    assert result["verified_by"] == VERIFIED_BY_APPROXIMATE == "item count vs DescribeBackup (approximate)"
    assert (result["item_count"], result["approximate_item_count"]) == (ROWS, ROWS)
    assert result["count_matches_approximate"] is True
    assert result["expected_checksum"] is None


def test_a_native_backup_is_never_restored_into_a_table_that_exists(things):
    backup = backup_table(table="Things", method="native")
    dynamodb_put_item(table="Things", item={"PK": "THING#later"})
    before = _items("Things")

    with pytest.raises(BackupError) as raised:
        backup_restore(backup=backup)

    assert raised.value.message == ERR_NATIVE_TARGET_EXISTS.format(id=backup.pk, source="Things", table="Things")
    assert "--target-table NEW_NAME" in raised.value.message
    assert _items("Things") == before  # nothing touched


def test_a_backup_still_creating_is_waited_for_and_one_deleted_in_dynamodb_is_named(things):
    backup = backup_table(table="Things", method="native")
    answers = []

    def creating_first(operation, params, send):
        response = send(params)
        if operation == "DescribeBackup":
            answers.append(response["BackupDescription"]["BackupDetails"]["BackupStatus"])
            if len(answers) == 1:
                response["BackupDescription"]["BackupDetails"]["BackupStatus"] = "CREATING"
        return response

    with fault_injection(creating_first):
        result = backup_restore(backup=backup, target_table="ThingsRestored")
    assert result["verified"] is True
    assert len(answers) == 2  # asked again after CREATING, restored once AVAILABLE

    get_client().delete_backup(BackupArn=backup.aws_backup_arn)
    with pytest.raises(BackupError) as raised:
        backup_restore(backup=backup, target_table="ThingsAgain")
    assert raised.value.message == ERR_NATIVE_GONE.format(
        id=backup.pk, source="Things", arn=backup.aws_backup_arn, endpoint="AWS DynamoDB (us-east-1)"
    )
    assert dynamodb_describe_table(table="ThingsAgain") is None


def test_two_restores_racing_for_one_new_table_name_one_wins_the_other_is_refused(things, monkeypatch):
    # moto checks "table exists" and then adds it without a lock; DynamoDB does both at once (the second restore
    # gets TableAlreadyExistsException). One lock makes the emulator behave, so the test measures us.
    lock = threading.Lock()
    real_restore = DynamoDBBackend.restore_table_from_backup

    def restore_atomically(self, *args, **kwargs):
        with lock:
            return real_restore(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "restore_table_from_backup", restore_atomically)
    backup = backup_table(table="Things", method="native")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []
    real_refusal = native.native_restore_refusal

    def refusal_then_wait(**kwargs):
        answer = real_refusal(**kwargs)
        barrier.wait(timeout=10)  # both have seen "no such table" before either restores
        return answer

    def restore():
        try:
            outcomes.append(backup_restore(backup=backup, target_table="ThingsRestored"))
        except BackupError as exc:
            outcomes.append(exc)

    native.native_restore_refusal = refusal_then_wait
    try:
        threads = [threading.Thread(target=restore) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        native.native_restore_refusal = real_refusal

    results = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, BackupError)]
    assert len(results) == len(refused) == 1
    assert results[0]["verified"] is True
    assert "only creates a new table" in refused[0].message


# --- endpoints without CreateBackup -------------------------------------------------------------------------


def test_native_on_an_endpoint_without_create_backup_is_an_error_naming_table_and_endpoint(things):
    with fault_injection(_without_create_backup), pytest.raises(BackupError) as raised:
        backup_table(table="Things", method="native")

    assert "Backup of Things: the method is native" in raised.value.message
    assert "AWS DynamoDB (us-east-1)" in raised.value.message  # the endpoint (moto stands in for AWS here)
    assert "UnknownOperationException" in raised.value.message
    assert not Backup.objects.exists()


def test_auto_takes_the_export_after_all_on_an_endpoint_without_create_backup(things, too_long_to_export):
    with fault_injection(_without_create_backup):
        backup = backup_table(table="Things")

    assert backup.method == BackupMethod.EXPORT
    assert (backup.item_count, backup.aws_backup_arn) == (ROWS, "")


# --- point-in-time recovery on setup -------------------------------------------------------------------------


def test_plan_setup_switches_point_in_time_recovery_on_where_the_endpoint_has_it(db, dynamodb, sqlite_source):
    plan = plan_save(name="things", source_url=sqlite_source(THINGS_DDL), mapping=things_mapping())

    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)

    assert context.pitr == {"Things": "ENABLED"}
    assert dynamodb_point_in_time_recovery(table="Things")["PointInTimeRecoveryStatus"] == "ENABLED"
    assert backup_table(table="Things", method="native").native_details["pitr_status"] == "ENABLED"


def test_plan_setup_leaves_pitr_off_when_told_and_goes_on_where_the_endpoint_lacks_it(
    db, dynamodb, sqlite_source, settings, capsys
):
    plan = plan_save(name="things", source_url=sqlite_source(THINGS_DDL), mapping=things_mapping())
    settings.LIZZY_BACKUP_PITR = False
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    assert dynamodb_point_in_time_recovery(table="Things")["PointInTimeRecoveryStatus"] == "DISABLED"

    settings.LIZZY_BACKUP_PITR = True
    with fault_injection(_without_create_backup):
        call_command("migration_setup_tables", plan.name)
    assert "point-in-time recovery Things: unsupported" in capsys.readouterr().out


# --- phase changes: shown before starting; rollback never writes somewhere else ------------------------------


def test_a_phase_change_logs_each_backups_method_and_estimate_before_any_starts(things, caplog, monkeypatch):
    logged_before: list[bool] = []
    real_backup_table = phases.backup_table

    def backup_table_watched(**kwargs):
        logged_before.append(any("backing up: Things: about 230 items" in r.getMessage() for r in caplog.records))
        return real_backup_table(**kwargs)

    monkeypatch.setattr(phases, "backup_table", backup_table_watched)
    with caplog.at_level(logging.INFO, logger="migration_app.services.phases"):
        transition = plan_advance(plan=things, to_phase=Phase.BACKFILL, reason="go")

    assert logged_before == [True]
    assert "Method: export (auto: the export takes about" in caplog.text
    assert transition.backup_texts[0].startswith(f"backup #{transition.backups.get().pk} of Things (export): 230")


def test_rollback_of_a_native_backup_is_refused_while_the_table_exists_then_restores_it_under_its_name(
    db, dynamodb, sqlite_source, settings
):
    settings.LIZZY_BACKUP_METHOD = "native"
    source = sqlite_source(THINGS_DDL, {"things": things_rows(30)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, reason="go")  # a native backup of the empty table
    with plan_context(plan=plan) as context:
        run_execute(run=run_create(context=context), context=context)

    tables_before = set(dynamodb_list_tables())

    with pytest.raises(PhaseGuardFailed, match="restores only into a table that does not exist") as raised:
        plan_rollback(plan=plan, actor="ops", reason="wrong source")

    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL  # not moved
    assert len(_items("Things")) == 30  # not touched
    assert set(dynamodb_list_tables()) == tables_before  # and no other table written in its place
    assert raised.value.details == {"tables": ["Things"]}

    dynamodb_delete_table(table="Things")
    transition = plan_rollback(plan=plan, actor="ops", reason="wrong source")

    plan.refresh_from_db()
    assert plan.phase == Phase.SETUP
    assert _items("Things") == []
    assert transition.restored[0]["verified"] is True
    assert transition.restored[0]["method"] == "native"


# --- command and admin output --------------------------------------------------------------------------------


def test_commands_show_the_method_and_what_the_restore_was_checked_by(things, capsys, too_long_to_export):
    call_command("backup_table", "Things", "--estimate")
    assert "Method: native (auto: the export would take" in capsys.readouterr().out
    assert not Backup.objects.exists()

    call_command("backup_table", "Things")
    out = capsys.readouterr().out
    backup = Backup.objects.get()
    assert out.startswith(f"backup #{backup.pk} of Things (native): about 230 items (DescribeBackup, approximate)")
    assert "a restore will not be verified" in out

    call_command("restore_table", str(backup.pk), "--target-table", "ThingsRestored")
    assert '"verified": false, "verified_by": "item count vs DescribeBackup (approximate)"' in capsys.readouterr().out


def test_the_admin_names_the_weaker_check_as_weaker(things, too_long_to_export, ops_admin_client):
    backup_table(table="Things")
    backup_table(table="Things", method="export")

    listing = ops_admin_client.get(reverse("admin:migration_app_backup_changelist")).content.decode()
    console = ops_admin_client.get(reverse("admin:migration_app_migrationplan_change", args=[things.pk]))

    assert "item count vs DescribeBackup (approximate: 230 items); checksum not taken" in listing
    assert "never reported verified" in listing
    assert "item count and checksum (exact)" in listing
    assert "The next phase change backs up first" in console.content.decode()
    assert "Method: native" in console.content.decode()
