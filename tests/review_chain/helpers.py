"""Shared setup for the chain review's proofs (commit 032bdea)."""

from __future__ import annotations

import copy

import pytest

from migration_app.models import MigrationRun
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import THINGS_DDL, drain_queue, things_mapping, things_rows  # noqa: F401 - drain_queue for the tests here

WIDGETS_DDL = THINGS_DDL.replace("things", "widgets")


def two_entity_mapping() -> dict:
    """``things`` -> Things and ``widgets`` -> Widgets: two entities, two target tables, one plan."""
    things = things_mapping()["rules"][0]
    widgets = copy.deepcopy(things)
    widgets.update({"rule-id": "2", "rule-name": "widgets", "target-table-name": "Widgets"})
    widgets["object-locator"] = {"schema-name": "main", "table-name": "widgets"}
    widgets["mapping-parameters"]["attribute-mappings"][0]["value"] = "WIDGET#${id}"
    return {"rules": [things, widgets]}


def two_entity_run(sqlite_source, settings, things: int, widgets: int, *, limit=None, unit_rows=50) -> MigrationRun:
    settings.LIZZY_MIGRATION_UNIT_ROWS = unit_rows
    source = sqlite_source(THINGS_DDL + WIDGETS_DDL, {"things": things_rows(things), "widgets": things_rows(widgets)})
    plan = plan_save(name="two", source_url=source, mapping=two_entity_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        return run_create(context=context, limit=limit)


def one_entity_run(sqlite_source, settings, rows: int, *, unit_rows=50, extra=()) -> MigrationRun:
    settings.LIZZY_MIGRATION_UNIT_ROWS = unit_rows
    source = sqlite_source(THINGS_DDL, {"things": [*things_rows(rows), *extra]})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        return run_create(context=context)


@pytest.fixture
def sent(dynamodb):
    """(table, PK) of every item each BatchWriteItem call carried (every thread)."""
    keys: list[tuple[str, str]] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                keys.extend((table, request["PutRequest"]["Item"]["PK"]["S"]) for request in requests)
        return send(params)

    with fault_injection(hook):
        yield keys
