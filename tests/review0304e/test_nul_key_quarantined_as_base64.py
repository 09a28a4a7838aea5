"""A bad row whose text key holds a NUL is quarantined (and named in errors) by base64, not by its key.

Promise broken (docs/MIGRATIONS.md, kept by 7bdf4ee): "A bad row is quarantined as read, except that a NUL
character (U+0000) in its values, key or reason is stored as the text `\\u0000`". Since 7bdf4ee row[KEY] holds
the key encoded ({"$text": base64}), and writer.source_key_of (BadRow), ERR_COLLISION's first/second, the
CDC quarantine (apply.py's ChangeRef.source_key) and validation's ERR_ROW_UNMAPPABLE all build the shown key
from it: the quarantine shows {"id": {"$text": "awAx"}} for key "k\\x001" (before 7bdf4ee: "k\\u00001").
An operator cannot find the row from the admin or the run's error. (A $bytes key was always shown encoded;
a text key is new to this.)

Suggested fix: decode_key(row[KEY]) in source_key_of (and the CDC ChangeRef / collision messages), then
nul_escaped as before -- keep the encoded form only for checkpoints and bounds.
"""

from __future__ import annotations

import pytest

from migration_app.models import QuarantinedRow
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create
from tests.migration_app.factories import drain_queue, things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40), updated_at TIMESTAMP)"


@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_bad_row_with_a_nul_in_its_key_is_quarantined_under_its_key_text(make_source, dynamodb, engine):
    rows = [
        {"id": "k\x001", "name": None, "updated_at": "2025-01-01 00:00:00"},  # NULL in the key template: bad
        {"id": "k2", "name": "ok", "updated_at": "2025-01-01 00:00:00"},
    ]
    mapping = things_mapping()
    rule = mapping["rules"][0]
    rule["object-locator"]["schema-name"] = "%"
    rule["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${id}#${name}"
    plan = plan_save(name="nulbad", source_url=make_source(DDL, {"things": rows}), mapping=mapping, max_bad_rows=5)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    drain_queue([unit.pk for unit in run.segments.order_by("pk")])
    (bad,) = QuarantinedRow.objects.filter(run=run)
    assert bad.source_key == {"id": "k\\u00001"}, bad.source_key
