"""ddfafb4 bounds what throttling costs a chain: "a transient error starting a unit in the chain ends the
chain's taking ahead (one message more a chain, not one every boundary under throttling)". That holds where
the error is raised in ``_Chain._start``, which with a shared writer (``LIZZY_MIGRATION_WRITE_CONCURRENCY``
> 1, the default 4) it almost never is: the first page's chunks are only submitted there. Under throttling at
a boundary the error reaches the *unit before*, in its drain, while the unit taken ahead is leased:
``_segment_guarded`` calls ``chain.abandon()`` (release, queue again), the unit before backs off, retries,
and then takes a unit ahead again (``deadline`` untouched): one message more at every boundary, the bound
the fix states is not met at the default concurrency.

The fault: the call carrying each unit's last rows (THING#50, #100, ...) fails once with the endpoint away
(a transient error). At concurrency 1 that failure is seen before the next unit is taken (its pages are
written in the caller's thread): no message more at all (the control)."""

from __future__ import annotations

from collections import Counter

import pytest

from lizzy.dynamodb import DynamoDBUnavailable
from migration_app.models import RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review_chain.helpers import drain_queue, one_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [4, 1], ids=["concurrency-4", "control-concurrency-1"])
def test_a_throttled_boundary_queues_at_most_one_message_more_a_chain(sqlite_source, settings, dynamodb, concurrency):
    # given 230 rows in units of 50, and the call with each unit's last rows failing once (transient)
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = one_entity_run(sqlite_source, settings, 230)
    failed: set[str] = set()
    last_keys = {f"THING#{n}" for n in (50, 100, 150, 200, 230)}

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            keys = {r["PutRequest"]["Item"]["PK"]["S"] for reqs in params["RequestItems"].values() for r in reqs}
            fail = (keys & last_keys) - failed
            if fail:
                failed.update(fail)
                raise DynamoDBUnavailable("the endpoint went away")
        return send(params)

    queued: list[int] = []
    # when one task chains the run's units (the first unit's message), its cut's messages counted
    with fault_injection(hook):
        segment_run(segment_id=run.segments.get().pk, on_unit=lambda unit: queued.append(unit.pk), chain_seconds=60)
        requeued = sum(count - 1 for count in Counter(queued).values())  # a cut queues each unit once

        # then the run still ends with every row once ...
        drain_queue(list(queued))
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 230, 230)
    # ... and the chain queued at most one message more than its cuts did (concurrency 4: one a boundary)
    assert requeued <= 1, f"{requeued} units released and queued again by one chain"
