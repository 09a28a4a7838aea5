"""The draining unit's ``LeaseLost``, raised from the keep-alive of the unit taken ahead, is taken for the
head's own: the head, whose lease is still ours, is dropped (released, not queued again, its first pages'
calls wasted) and the chain ends.

0ed9ec7 gives the head's pipeline ``on_wait = chain.keep_alive``, which renews ``chain.current`` (the unit
draining) first, its ``LeaseLost`` "going on to it". While ``_Chain._start`` pumps the head, that
``LeaseLost`` is raised inside the head's ``write`` and caught by ``_start``'s ``except (LeaseLost,
UnitLeased)``: "unit ... not taken ahead", ``_drop(state, lease, requeue=False)``. The unit that lost its
lease (the draining one) goes on to find out in its own drain; the head, healthy, is released with no message
of its own queued again (``requeue=False`` assumes another runner has it: here nobody does; its own message,
if already delivered and put off until the lease it saw expires, leaves it idle until then) and what it had
sent is written again by whoever takes it.

Fix: tell the leases apart in ``_start`` (e.g. ``keep_alive`` records the current unit's loss and lets the
current pipeline raise it at its next look, or ``_start`` re-raises a ``LeaseLost`` whose lease is not the
head's after setting ``self.next``), so that the head stays taken and is continued by the chain.
"""

from __future__ import annotations

import pytest
from django.db.models import F

from migration_app.models import Segment
from migration_app.services import runs
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, segment_run
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db


def test_the_draining_units_lost_lease_does_not_drop_the_unit_taken_ahead(
    sqlite_source, settings, dynamodb, monkeypatch
):
    # given units of 100 rows in pages of 50, last-wins keys by name with row 260 sharing row 210's key and row
    # 160 row 110's (whichever unit the chain takes ahead waits, inside ``_start``, for its first page's
    # chunks before its second: a keep-alive of the head while the first unit drains)
    settings.LIZZY_MIGRATION_UNIT_ROWS = 100
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
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
    heads: list[int] = []
    start = runs._Chain._start

    def first_unit_lost_then_start(self, lease, segment, context, on_rows):
        if not heads:
            heads.append(segment.pk)
            # the first unit, all its pages handed over, lost its lease (another runner took it after a stall)
            # and a tenth of its lease has passed since it was last extended: its next keep-alive finds out
            # (its fence moved on; the owner kept, so that guided sizes still count one runner)
            Segment.objects.filter(pk=first).update(fence=F("fence") + 1)
            self.current.renewed_at -= self.current.keep_every
        return start(self, lease, segment, context, on_rows)

    monkeypatch.setattr(runs._Chain, "_start", first_unit_lost_then_start)

    # when one task chains the units
    segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then the first unit is left to the runner that took it, and the unit taken ahead, whose lease was ours
    # all along, was continued by this chain (it fails: it was dropped as if its own lease were lost, released
    # with no message queued again, and the chain ended)
    (head,) = heads
    assert not Segment.objects.get(pk=first).done
    unit = Segment.objects.get(pk=head)
    assert unit.done, f"the unit taken ahead (rows after {unit.lower_key}) was dropped: {unit.rows_read} rows read"
