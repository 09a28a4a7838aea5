"""Backups are verified exports; restores are verified; phases are guarded; rollback is recorded."""

import datetime as dt
import json
from pathlib import Path

import pytest
from django.utils import timezone

from lizzy.dynamodb import dynamodb_put_item, dynamodb_scan_segment
from migration_app.models import Phase, ValidationReport
from migration_app.services.backups import BackupError, backup_restore, backup_table
from migration_app.services.phases import PhaseGuardFailed, plan_advance, plan_rollback
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def things_plan(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(30)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def _backfill(plan):
    with plan_context(plan=plan) as context:
        return run_execute(run=run_create(context=context), context=context)


def test_backup_export_counts_and_restores_into_a_new_table(things_plan):
    _backfill(things_plan)

    backup = backup_table(table="Things", reason="test")
    result = backup_restore(backup=backup, target_table="ThingsCopy")

    assert backup.item_count == 30
    assert len(backup.checksum) == 64
    assert backup.aws_backup_arn == ""  # one method per backup: no on-demand copy beside the export
    assert len(Path(backup.location).read_text().splitlines()) == 30
    assert result["created"]
    assert result["verified"]
    assert result["item_count"] == 30
    assert sorted(i["PK"] for i in dynamodb_scan_segment(table="ThingsCopy")) == sorted(
        i["PK"] for i in dynamodb_scan_segment(table="Things")
    )


def test_restore_into_the_same_table_removes_later_writes(things_plan):
    _backfill(things_plan)
    backup = backup_table(table="Things")
    dynamodb_put_item(table="Things", item={"PK": "THING#later"})

    result = backup_restore(backup=backup)

    assert result["deleted"] == 1
    assert "THING#later" not in {i["PK"] for i in dynamodb_scan_segment(table="Things")}


def test_a_tampered_export_is_refused(things_plan):
    _backfill(things_plan)
    backup = backup_table(table="Things")
    path = Path(backup.location)
    lines = path.read_text().splitlines()
    lines[0] = json.dumps({"PK": {"S": "THING#forged"}})
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(BackupError):
        backup_restore(backup=backup)


def test_cutover_needs_a_clean_validation_newer_than_the_backfill(things_plan):
    plan_advance(plan=things_plan, to_phase=Phase.BACKFILL, actor="ops", reason="go")
    _backfill(things_plan)
    plan_advance(plan=things_plan, to_phase=Phase.PARALLEL)
    plan_advance(plan=things_plan, to_phase=Phase.VALIDATE)

    with pytest.raises(PhaseGuardFailed, match="clean full validation"):
        plan_advance(plan=things_plan, to_phase=Phase.CUTOVER)
    dynamodb_put_item(table="Things", item={"PK": "THING#stray"})
    assert not plan_validate(plan=things_plan).clean
    with pytest.raises(PhaseGuardFailed, match="the latest found"):
        plan_advance(plan=things_plan, to_phase=Phase.CUTOVER)

    ValidationReport.objects.all().delete()
    plan_validate(plan=things_plan)  # still dirty: the stray is there
    backup_restore(backup=things_plan.transitions.get(to_phase=Phase.VALIDATE).backups.get())
    assert plan_validate(plan=things_plan).clean
    transition = plan_advance(plan=things_plan, to_phase=Phase.CUTOVER, reason="validated")
    assert transition.to_phase == Phase.CUTOVER


def test_skipping_a_phase_or_cleaning_up_too_early_is_refused(things_plan, settings):
    with pytest.raises(PhaseGuardFailed, match="next phase is backfill"):
        plan_advance(plan=things_plan, to_phase=Phase.VALIDATE)
    things_plan.phase = Phase.CUTOVER
    things_plan.phase_changed_at = timezone.now()
    things_plan.save()
    settings.LIZZY_MIGRATION_CLEANUP_WAIT_SECONDS = 3600
    with pytest.raises(PhaseGuardFailed, match="Cleanup is allowed"):
        plan_advance(plan=things_plan, to_phase=Phase.CLEANUP)
    things_plan.phase_changed_at = timezone.now() - dt.timedelta(hours=2)
    things_plan.save()
    assert plan_advance(plan=things_plan, to_phase=Phase.CLEANUP).to_phase == Phase.CLEANUP


def test_rolling_back_a_backfill_removes_what_the_plan_wrote_and_records_who_why(things_plan, admin_user):
    plan_advance(plan=things_plan, to_phase=Phase.BACKFILL, actor=admin_user, reason="start")
    _backfill(things_plan)
    assert len(list(dynamodb_scan_segment(table="Things"))) == 30

    transition = plan_rollback(plan=things_plan, actor=admin_user, reason="wrong source")

    things_plan.refresh_from_db()
    assert things_plan.phase == Phase.SETUP
    assert list(dynamodb_scan_segment(table="Things")) == []
    assert (transition.rollback, transition.actor_name, transition.reason) == (True, "admin", "wrong source")
    assert transition.restored[0]["verified"]


def test_rollback_needs_a_reason(things_plan):
    with pytest.raises(Exception, match="needs a reason"):
        plan_rollback(plan=things_plan, actor="ops", reason=" ")
