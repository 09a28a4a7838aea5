"""A source value holding a NUL, changed in the target: validation crashes saving its report.

Promise broken (docs/MIGRATIONS.md, "A bad row is quarantined ... The item written to DynamoDB keeps the NUL
(a string attribute may hold it)" and 7bdf4ee's "a NUL in a text key is checkpointed", i.e. NUL-holding
source text is supported end to end): validation is to *report* a difference ("Sampled keys and field-level
diffs", ValidationReport.samples). The field diff of samples["different"] carries the source's expected value
raw ({"S": "n\\x00ul"}), and ValidationReport.samples is jsonb: report.save() in validation_merge raises
DataError "unsupported Unicode escape sequence" -- the validation fails instead of reporting 1 difference.
(Item keys in samples are JSON text, so a NUL *key* is fine: test_sound_probes.py.)

Suggested fix: nul_escaped(samples) (and any contract-violation problem text quoting values) before
ValidationReport.save(), as the quarantine does.
"""

from __future__ import annotations

import pytest

from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import drain_queue, things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40) NOT NULL, updated_at TIMESTAMP)"


@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_changed_item_whose_source_value_holds_a_nul_is_reported_as_different(make_source, dynamodb, engine):
    from lizzy.dynamodb.items import dynamodb_get_item, dynamodb_put_item

    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    url = make_source(DDL, {"things": [{"id": "k1", "name": "n\x00ul", "updated_at": "2025-01-01 00:00:00"}]})
    plan = plan_save(name="nulvalue", source_url=url, mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    drain_queue([unit.pk for unit in run.segments.order_by("pk")])
    item = dynamodb_get_item(table="Things", key={"PK": "THING#k1"}, consistent=True)
    assert item["name"] == "n\x00ul"  # written with its NUL
    dynamodb_put_item(table="Things", item={**item, "name": "changed"})
    error = None
    try:
        report = plan_validate(plan=plan)
    except Exception as exc:  # noqa: BLE001 - what escaped is the finding
        error, report = exc, None
    assert error is None, f"validation raised {type(error).__name__}: {str(error)[:120]}"
    assert report.different == 1
