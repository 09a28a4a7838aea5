"""plan_validate reads the source's key ranges in the calling thread while the target's Scan segments run."""

import threading

import pytest

from lizzy.dynamodb import DynamoDBError
from migration_app.services import validation
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import things_rows
from tests.migration_app.services.test_validation import _migrated


def test_a_target_segment_that_fails_stops_the_source_read(db, dynamodb, sqlite_source, settings, monkeypatch):
    # given a plan whose source has 10 key ranges, and a target Scan that fails at once
    plan = _migrated(sqlite_source, things_rows(20))
    settings.LIZZY_VALIDATION_RANGE_ROWS = 2
    failed = threading.Event()

    def unreadable(table, segment, total):
        failed.set()
        raise DynamoDBError("Scan failed (test)")
        yield

    real = validation.validation_part_run
    sources_read = []

    def counted(*, context, spec, mode, sample_size):
        if spec["side"] == "source":
            failed.wait(5)  # the target has failed before this range is read
            sources_read.append(spec["lower"])
        return real(context=context, spec=spec, mode=mode, sample_size=sample_size)

    monkeypatch.setattr(validation, "_scan_pages", unreadable)
    monkeypatch.setattr(validation, "validation_part_run", counted)
    # when the plan is validated
    with pytest.raises(Exception, match="could not read the target table Things"):
        plan_validate(plan=plan)
    # then the failure stops the validation: at most the range already being read is read, not all 10
    assert len(sources_read) <= 1, f"{len(sources_read)} source key ranges read after the target failed"
