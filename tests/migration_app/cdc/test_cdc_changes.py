"""What one change does: key templates on non-key columns, DMS filters, TRUNCATE, and the two entry points."""

from __future__ import annotations

import io
import json
import uuid

import psycopg
import pytest
from django.core.management import call_command

from lizzy.dynamodb import dynamodb_scan_segment
from migration_app.cdc.apply import CdcApplyError
from migration_app.cdc.worker import cdc_run
from migration_app.models import CdcStream, Phase
from migration_app.services.phases import plan_advance
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.tasks import cdc_task
from tests.migration_app.cdc.conftest import slots_of

pytestmark = pytest.mark.integration


@pytest.fixture
def cdc_db(transactional_db) -> None:
    """No test transaction: creating a slot waits for every transaction on the server (test_cdc_end_to_end)."""


def _parts_mapping(table: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "parts",
                "rule-action": "include",
                "object-locator": {"schema-name": "public", "table-name": "parts"},
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": "qty",
                        "filter-conditions": [{"filter-operator": "gte", "value": "0"}],
                    }
                ],
            },
            {
                "rule-type": "object-mapping",
                "rule-id": "2",
                "rule-name": "parts-map",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": "public", "table-name": "parts"},
                "target-table-name": table,
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "SKU#${sku}"}
                    ],
                },
            },
        ]
    }


def _ready_plan(url: str, name: str):
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE parts (id integer PRIMARY KEY, sku text NOT NULL, qty integer NOT NULL)")
        db.execute("INSERT INTO parts VALUES (1, 'a', 1), (2, 'b', 1)")
    plan = plan_save(name=name, source_url=url, mapping=_parts_mapping(table), cdc=True)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    with plan_context(plan=plan) as context:
        assert run_execute(run=run_create(context=context), context=context).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    return plan, table


def _keys(table: str) -> list[str]:
    return sorted(item["PK"] for item in dynamodb_scan_segment(table=table, consistent=True))


def test_a_key_built_from_a_non_key_column_and_rows_leaving_the_filter_delete_their_items(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "parts")
    assert _keys(table) == ["SKU#a", "SKU#b"]
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("UPDATE parts SET sku = 'c' WHERE id = 1")  # the item key changes: SKU#a must go
        db.execute("UPDATE parts SET qty = -1 WHERE id = 2")  # leaves the filter: SKU#b must go
        db.execute("INSERT INTO parts VALUES (3, 'd', -5)")  # outside the filter: not written ...
        db.execute("UPDATE parts SET qty = 5 WHERE id = 3")  # ... until it enters it
        db.execute("INSERT INTO parts VALUES (4, 'e', 1)")
        db.execute("DELETE FROM parts WHERE id = 4")  # inserted and deleted: nothing left

    outcome = cdc_run(plan=plan, until_idle=True)

    assert outcome.waiting == ""
    assert _keys(table) == ["SKU#c", "SKU#d"]
    assert outcome.changes == 6


def test_a_truncate_stops_the_worker_naming_the_table_and_nothing_is_confirmed(cdc_db, dynamodb, cdc_source):
    plan, table = _ready_plan(cdc_source, "truncated")
    cdc_run(plan=plan, until_idle=True)
    before = CdcStream.objects.get(plan=plan).confirmed_lsn
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("TRUNCATE parts")

    with pytest.raises(CdcApplyError, match=r"TRUNCATE of public\.parts"):
        cdc_run(plan=plan, until_idle=True)

    stream = CdcStream.objects.get(plan=plan)
    assert stream.confirmed_lsn == before  # the slot keeps the TRUNCATE: it is not skipped
    assert "TRUNCATE of public.parts" in stream.last_error
    assert _keys(table) == ["SKU#a", "SKU#b"]


def test_the_commands_and_the_celery_task_run_the_worker(cdc_db, dynamodb, cdc_source, tmp_path):
    # migrate_to_dynamodb --cdc: the plan with CDC on, its slot created before the backfill read
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("CREATE TABLE parts (id integer PRIMARY KEY, sku text NOT NULL, qty integer NOT NULL)")
        db.execute("INSERT INTO parts VALUES (1, 'a', 1)")
    table = f"Parts-{uuid.uuid4().hex[:8]}"
    mapping = tmp_path / "parts.json"
    mapping.write_text(json.dumps(_parts_mapping(table)))
    out = io.StringIO()
    call_command(
        "migrate_to_dynamodb", "--mapping", str(mapping), "--source", cdc_source, "--cdc", "--json", stdout=out
    )
    assert json.loads(out.getvalue().splitlines()[-1])["items_written"] == 1
    stream = CdcStream.objects.get(plan__name="parts")
    assert slots_of(cdc_source) == [stream.slot_name]
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("INSERT INTO parts VALUES (2, 'b', 1)")
    out = io.StringIO()
    call_command("migration_cdc", "parts", "--until-idle", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert (summary["changes"], summary["puts"], summary["waiting"]) == (1, 1, "")
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("DELETE FROM parts WHERE id = 1")
    assert cdc_task.delay(stream.plan_id, max_seconds=0.5).get()["deletes"] == 1
    assert _keys(table) == ["SKU#b"]


def test_a_table_no_longer_at_replica_identity_full_stops_the_worker(cdc_db, dynamodb, cdc_source):
    # old rows without their non-key columns would give a wrong old item key (SKU#${sku}): refused, not guessed
    plan, table = _ready_plan(cdc_source, "identity")
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute("ALTER TABLE parts REPLICA IDENTITY DEFAULT")
        db.execute("UPDATE parts SET sku = 'z' WHERE id = 1")

    with pytest.raises(CdcApplyError, match="REPLICA IDENTITY 'd', not FULL"):
        cdc_run(plan=plan, until_idle=True)
    assert _keys(table) == ["SKU#a", "SKU#b"]
