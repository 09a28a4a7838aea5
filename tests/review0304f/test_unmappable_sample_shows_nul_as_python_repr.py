"""Validation's sample of an unmappable row whose key holds a NUL shows the key as Python's repr (``\\x00``),
not as its text with the NUL written ``\\u0000``.

Promise broken (docs/MIGRATIONS.md, added by 010c787): "where a person reads it (the quarantine, a collision's
or a run's error, validation samples) it is its text, NULs as `\\u0000`". validation_part_run formats
ERR_ROW_UNMAPPABLE with key=key_shown(...) -- a *list* -- so str() gives its repr: the NUL becomes the four
characters ``\\x00`` before nul_escaped ever sees a NUL, and the sample reads "row ['k\\\\x001']: ..." (the
quarantine of the same row says {"id": "k\\\\u00001"}). A key holding the literal text "k\\\\x001" reads
the same. (The run's error has the sibling problem: ERR_ROW formats the nul_escaped dict, whose repr doubles
the backslash: "source key {'id': 'k\\\\\\\\u00001'}".)

Suggested fix: format the shown key as the quarantine stores it -- json.dumps(dict(zip(relation.key,
key_shown(...))), ensure_ascii=False) and then nul_escaped -- in ERR_ROW_UNMAPPABLE, ERR_ROW and ERR_COLLISION.
"""

from __future__ import annotations

import pytest

from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.validation import plan_validate
from tests.migration_app.factories import things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40), updated_at TIMESTAMP)"


@pytest.mark.parametrize("engine", ["sqlite"])
def test_an_unmappable_rows_sample_shows_its_nul_key_as_text_with_u0000(make_source, dynamodb, engine):
    mapping = things_mapping()
    rule = mapping["rules"][0]
    rule["object-locator"]["schema-name"] = "%"
    rule["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${id}#${name}"
    rows = [{"id": "k\x001", "name": None, "updated_at": "2025-01-01 00:00:00"}]  # NULL name: unmappable
    plan = plan_save(name="nulsample", source_url=make_source(DDL, {"things": rows}), mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    report = plan_validate(plan=plan)
    (sample,) = report.samples["missing"]
    assert "k\\u00001" in sample["key"], sample["key"]
