"""validate_task (admin, API, beat) runs the validation's parts as Celery tasks merged by a chord (issue 14).

Celery is eager in tests, so the chord runs inline: the parts are counted where they run, and the report
must be the one a one-process validation makes. The plan's validation lock is released however it ends.
"""

import pytest
from django.core.cache import cache

from lizzy.dynamodb import dynamodb_delete_item
from migration_app.models import MigrationPlan, Phase, ValidationReport
from migration_app.services import validation
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate, validation_parts
from migration_app.tasks import LOCK_KEY, scheduled_validations_task, validate_task
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def migrated(db, dynamodb, sqlite_source, settings):
    settings.LIZZY_VALIDATION_RANGE_ROWS = 7  # 20 rows: 3 source ranges, plus the Scan segments
    source = sqlite_source(THINGS_DDL, {"things": things_rows(20)}, name="things.sqlite3")
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    MigrationPlan.objects.filter(pk=plan.pk).update(phase=Phase.PARALLEL)
    return plan


@pytest.fixture
def parts_run(monkeypatch):
    """The specs of every part that ran (as a task: validation_part_task calls validation_part_run)."""
    ran = []
    original = validation.validation_part_run

    def counting(*, context, spec, mode):
        ran.append(spec)
        return original(context=context, spec=spec, mode=mode)

    monkeypatch.setattr("migration_app.tasks.validation_part_run", counting)
    return ran


def test_the_scheduled_validation_runs_as_parts_and_merges_into_the_one_process_report(migrated, parts_run, settings):
    settings.LIZZY_VALIDATION_DISTRIBUTED = True
    dynamodb_delete_item(table="Things", key={"PK": "THING#7"})
    with plan_context(plan=migrated) as context:
        specs = validation_parts(context=context)

    assert scheduled_validations_task() == [migrated.pk]

    report = ValidationReport.objects.filter(plan=migrated).latest("id")
    assert sorted(map(repr, parts_run)) == sorted(map(repr, specs))
    assert [spec["side"] for spec in specs].count("source") == 3
    local = plan_validate(plan=migrated)
    assert report.summary() == local.summary()
    assert report.missing == 1
    assert not report.clean
    assert (report.expected, report.found) == (20, 19)
    assert cache.get(LOCK_KEY.format(plan=migrated.pk, job="validate")) is None  # the merge released it


def test_a_failing_part_fails_the_validation_makes_no_report_and_releases_the_lock(migrated, monkeypatch, settings):
    settings.LIZZY_VALIDATION_DISTRIBUTED = True

    def broken(*, context, spec, mode):
        raise RuntimeError("the source went away")

    monkeypatch.setattr("migration_app.tasks.validation_part_run", broken)
    with pytest.raises(RuntimeError, match="the source went away"):
        validate_task.delay(migrated.pk)

    assert not ValidationReport.objects.filter(plan=migrated).exists()
    assert cache.get(LOCK_KEY.format(plan=migrated.pk, job="validate")) is None


def test_a_second_request_while_one_runs_is_skipped_and_one_process_mode_still_works(migrated, settings):
    lock = LOCK_KEY.format(plan=migrated.pk, job="validate")
    cache.add(lock, "1", 60)
    try:
        assert validate_task.delay(migrated.pk).get() is None
        assert not ValidationReport.objects.filter(plan=migrated).exists()
    finally:
        cache.delete(lock)

    settings.LIZZY_VALIDATION_DISTRIBUTED = False
    report_id = validate_task.delay(migrated.pk).get()
    assert ValidationReport.objects.get(pk=report_id).clean
