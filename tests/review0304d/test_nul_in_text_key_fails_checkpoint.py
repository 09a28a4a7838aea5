"""A source row whose string key holds a NUL: the checkpoint UPDATE of Segment.last_key (jsonb) fails.

Promise broken (f211064, migration_app.models.nul_escaped): "PostgreSQL's text and jsonb hold no NUL, so a bad
row, its key or its reason quoting one would make the quarantine's INSERT (and the run's ``last_error``) fail
instead of setting the row aside" -- escaped for BadRow and the CDC quarantine only. A key is also written as
the unit's checkpoint (Segment.last_key, a JSONField: jsonb) after every page, raw. A text primary key
ending a page with a NUL (legal in SQLite/MySQL text) makes that UPDATE raise DataError ("unsupported
Unicode escape sequence"): the run fails (or the task crashes) on a row that is perfectly writable, and the
error message naming segment.last_key would carry the same NUL into last_error.
Measured (keys "a", "b", "c\x00d", one page): run FAILED, rows_read 0 of 3, RunFailed "... after source key
(start) (0 item(s) written): unexpected DataError: unsupported Unicode escape sequence ... UPDATE
"migration_app_segment" SET "last_key"".

Suggested fix: store checkpoints through an encoding that round-trips NUL (e.g. a tagged form
{"$nul": ...} or base64 for str keys holding U+0000) -- nul_escaped would corrupt the resume position since
"\\u0000" sorts differently -- and nul_escaped every last_error / message built from a source key.
"""

from __future__ import annotations

import pytest

from migration_app.models import RunStatus
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, segment_run
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db(transaction=True)  # as in a worker: no outer transaction

TEXT_KEY_DDL = THINGS_DDL.replace("id INTEGER PRIMARY KEY", "id TEXT PRIMARY KEY")


def test_a_run_whose_text_key_holds_a_nul_checkpoints_and_succeeds(sqlite_source, settings, dynamodb):
    settings.LIZZY_MIGRATION_UNIT_ROWS = 50
    rows = things_rows(3)
    for row, key in zip(rows, ("a", "b", "c\x00d"), strict=True):
        row["id"] = key
    source = sqlite_source(TEXT_KEY_DDL, {"things": rows})
    plan = plan_save(name="nulkey", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    error = None
    for unit in run.segments.order_by("pk"):
        try:
            segment_run(segment_id=unit.pk, on_unit=lambda unit: None, chain_seconds=0)
        except Exception as exc:  # noqa: BLE001 - what escaped the task is the finding
            error = exc
    run.refresh_from_db()
    assert error is None
    assert (run.status, run.rows_read) == (RunStatus.SUCCEEDED, 3), (
        f"status {run.status}, rows_read {run.rows_read}, escaped {error!r}, last_error {run.last_error[:300]!r}"
    )
