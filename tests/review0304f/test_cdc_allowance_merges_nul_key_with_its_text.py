"""Change capture counts two different bad source rows as one when one key holds a NUL and the other the
six characters ``\\u0000`` in its place.

Promise broken (migration_app/cdc/quarantine.py's docstring): "The allowance counts distinct source rows:
every bad change is recorded, but a row that stays bad through many updates counts once", and
docs/MIGRATIONS.md: "Past the plan's max_bad_rows ... change capture stops". Since 010c787 the CDC change's
source_key is key_shown(row[KEY]) (the decoded text), and changes_quarantine stores nul_escaped(source_key):
the key "a\\x00b" and the key "a\\\\u0000b" (a backslash, u, 0000 -- a MySQL/SQLite VARCHAR may hold either)
are both stored as {"id": "a\\\\u0000b"}. cdc_quarantined_rows counts DISTINCT (source_table, rule,
source_key): 1 instead of 2, so a plan with max_bad_rows=1 goes on past its allowance (and _crossing would
name the wrong row). Before 010c787 the NUL key was stored as {"$text": ...} and counted apart.

Suggested fix: count the allowance by the row's identity (ChangeRef.owner: entity and the *encoded* key,
which is exact), e.g. store it in a column (or in the row JSON) and DISTINCT on it; keep the shown key for
people only. (Or make nul_escaped injective: escape a literal backslash too, e.g. "\\\\" -> "\\\\\\\\".)
"""

from __future__ import annotations

import pytest

from migration_app.cdc.apply import BadChange, CdcApplyError, ChangeApplier
from migration_app.cdc.quarantine import cdc_quarantined_rows, changes_quarantine
from migration_app.models import CdcStream, QuarantinedRow
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
def test_two_bad_rows_nul_key_and_its_escaped_text_are_two_rows_of_the_allowance(make_source, engine):
    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    plan = plan_save(name="cdcnul", source_url=make_source(DDL, {"things": []}), mapping=mapping, max_bad_rows=1)
    stream = CdcStream.objects.create(plan=plan, slot_name="r0304f", publication_name="r0304f")
    keys = ["a\x00b", "a\\u0000b"]  # two different source rows
    with plan_context(plan=plan) as context:
        entity = context.entities[0]
        applier = ChangeApplier(context=context, type_names=lambda relation: [], rows=lambda *a, **k: [])
        bad = []
        for lsn, key in enumerate(keys, start=100):
            row = {"id": key, "name": None, KEY: encode_key([key])}
            ref = applier._ref(entity, "insert", _Tx(lsn), 0, row, None)  # as operations() builds it
            bad.append(BadChange(ref, "name is NULL"))
        assert bad[0].change.owner != bad[1].change.owner  # the applier itself tells them apart
        raised = None
        try:
            changes_quarantine(stream=stream, plan=plan, bad=bad)
        except CdcApplyError as exc:
            raised = exc
    stored = list(QuarantinedRow.objects.filter(stream=stream).order_by("id").values_list("source_key", flat=True))
    assert len(stored) == 2
    distinct = cdc_quarantined_rows(stream=stream)
    assert distinct == 2, f"2 distinct bad source rows: counted {distinct}; stored keys {stored}"
    assert raised is not None, f"2 distinct bad source rows, max_bad_rows=1: nothing raised; stored keys {stored}"
