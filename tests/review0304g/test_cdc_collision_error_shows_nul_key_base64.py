"""Change capture's collision error names a source key holding a NUL by its checkpoint form
(``{'$text': 'YQBi'}``), not by its text with the NUL as ``\\u0000``.

Promise broken (docs/MIGRATIONS.md, NUL paragraph, as reworded by 33545e8): "A run's quarantine and a
collision's error show it as its text, NULs as `\\u0000`; ... change capture's quarantine keeps the checkpoint
form". Only the CDC *quarantine's key* is excepted; the CDC collision reason (docs: "quarantined with the
backfill's reason naming both source keys") formats ChangeRef.source_key, which 33545e8 made row[KEY] again,
so the person reads base64. (Same as 1cbdf73; 010c787 had shown the text.)

Suggested fix: keep source_key exact for the allowance, but format ERR_COLLISION's first/second with
key_shown (dict(zip(key, key_shown(ref.source_key.values())))), or narrow the docs sentence to the run's
collision error and say change capture's collision error quotes the checkpoint form too.
"""

from __future__ import annotations

import pytest

from migration_app.cdc.apply import ChangeApplier, Operation
from migration_app.services.plans import plan_context, plan_save
from migration_app.sources import KEY
from migration_app.sources.base import encode_key
from tests.migration_app.factories import things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40), updated_at TIMESTAMP)"


class _Tx:
    def __init__(self, lsn: int) -> None:
        self.commit_lsn = lsn


@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_cdc_collision_names_a_nul_key_as_its_text(make_source, engine):
    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    plan = plan_save(name="cdccoll", source_url=make_source(DDL, {"things": []}), mapping=mapping)
    with plan_context(plan=plan) as context:
        entity = context.entities[0]
        assert entity.collisions == "error"
        applier = ChangeApplier(context=context, type_names=lambda r: [], rows=lambda *a, **k: [])
        refs = []
        for lsn, key in enumerate(["a\x00b", "plain"], start=100):
            row = {"id": key, "name": "n", KEY: encode_key([key])}
            refs.append(applier._ref(entity, "insert", _Tx(lsn), 0, row, None))
        operations = [Operation("T", ("same",), ("PK",), {"PK": "same"}, ref) for ref in refs]
        bad = []
        applier._collisions_settled(operations, bad)
    (entry,) = bad
    assert "$text" not in entry.reason, entry.reason
    # (since the fix: quoted as Python does, as a run's collision error quotes it; docs/MIGRATIONS.md)
    assert "{'id': 'a\\x00b'}" in entry.reason, entry.reason
