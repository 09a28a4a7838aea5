"""While ``_Chain._start`` waits inside the head unit's ``write`` (its window limit), only the head's lease is
kept alive: the unit before, whose last chunks are still in the shared writer and whose last checkpoint waits
for ``_segment_loop``'s drain, is not renewed (``pipeline.on_wait`` is set only after ``start_next`` returns,
and the head's pipeline has no ``on_wait``). The head waits there when its second page overwrites a key of its
first (``"key-collisions": "last-wins"``: the window must be empty first), i.e. for its first page's chunks,
queued behind the unit before's last ones or slow themselves (throttling retried, a slow endpoint): longer
than the lease, and the unit before expires under its chunks not checkpointed, free for another runner to take
over while this one still writes it (the gap e9126cd closed for the drain, left open one call earlier).

Fix: one keep-alive for every lease the chain holds, e.g. give the head's pipeline an ``on_wait`` that renews
the draining unit (``_Chain`` knows it: pass it to ``start_next``), or renew the caller's lease in
``start_next``'s waits.
"""

from __future__ import annotations

import time

import pytest

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db


def test_the_unit_before_keeps_its_lease_while_the_head_waits_for_its_window(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given units of 100 rows in pages of 50, last-wins keys by name, row 260 sharing row 210's key and row 160
    # row 110's (the head, whichever unit the chain takes, overwrites in its second page a key of its first),
    # leases of 1 s, and the call carrying the head's first row held 2.5 s
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    settings.LIZZY_MIGRATION_UNIT_ROWS = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 4
    rows = things_rows(300)
    rows[259]["name"], rows[159]["name"] = rows[209]["name"], rows[109]["name"]
    mapping = things_mapping(**{"key-collisions": "last-wins"})
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${name}"
    plan = plan_save(name="lastwins", source_url=sqlite_source(THINGS_DDL, {"things": rows}), mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    first = run.segments.get().pk
    expired: list[int] = []  # units found expired while a keep-alive ran
    keep_alive = runs._UnitPipeline._keep_alive

    def watched(self):
        keep_alive(self)
        now = runs.timezone.now()
        leased = Segment.objects.filter(run=run, done=False).exclude(lease_owner="")
        expired.extend(unit.pk for unit in leased if unit.lease_expires_at < now and unit.pk not in expired)

    monkeypatch.setattr(runs._UnitPipeline, "_keep_alive", watched)

    def slow_head(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            ids = {int(request["PutRequest"]["Item"]["id"]["N"]) for request in requests}
            if ids & {101, 201}:
                time.sleep(2.5)
        return send(params)

    # when one task chains the units
    with fault_injection(slow_head):
        segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then no lease the chain held expired while it waited (it fails: the first unit's, its last chunks
    # accepted but not checkpointed, expired while the head waited 2.5 s for its first page; then the second
    # head's wait expired the unit continued before it the same way)
    assert expired == [], f"unit(s) {expired} expired while the chain waited (the first unit is {first})"
