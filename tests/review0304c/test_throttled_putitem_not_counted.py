"""Review of da8ca2d: a PutItem of a page rewritten item by item that DynamoDB throttles (``DynamoDBThrottled``
past botocore's retries: a transient error, the unit is retried and writes the page again) is not counted in
the unit's ``throttle_retries``, while the same answer to a BatchWriteItem is.

Promise broken (the commit's claim / ``_send_chunk``'s docstring and docs/MIGRATIONS.md): "unprocessed_retries
/ throttle_retries count the calls answered with items left over / throttled (each retried unless stopped or
out of attempts)", "retries == number of such answers ... in every path: transient errors of any kind
(... DynamoDBThrottled past botocore retries ...), refused pages rewritten item by item (with failures inside
the rewrite)". ``docs/MIGRATIONS.md``: "Write units and retries count every call the unit sent since its last
checkpoint".

``writer._one_by_one`` builds ``call = BatchWriteResult(calls=1)`` per PutItem and tells ``on_chunk`` only on
success or a refusal; a ``DynamoDBThrottled`` (or any other non-refused error) from ``dynamodb_put_item``
is re-raised with no ``.spent``, so ``_counting`` adds nothing: the throttled answer is lost. (A
BatchWriteItem throttled at its last attempt is counted, ``_send_chunk``: ``throttle_retries += 1``.)

Suggested fix: in ``_one_by_one``'s PutItem loop, on a ``DynamoDBThrottled`` set ``call.throttle_retries = 1``
and attach it (``exc.spent = call``) before re-raising (or tell ``on_chunk(call)`` first), so the pipeline's
``_counting`` counts it once; likewise for the page_load path at concurrency 1.
"""

from __future__ import annotations

import pytest

from lizzy.dynamodb import batch
from migration_app.models import MigrationRun, RunStatus
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.review0304c.hooks import Faults
from tests.review_chain.helpers import one_entity_run


@pytest.mark.django_db
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_throttled_putitem_of_a_rewrite_is_counted(sqlite_source, settings, dynamodb, monkeypatch, concurrency):
    # given one unit of one 50-row page whose chunk with THING#30 DynamoDB refuses (the page then PutItem by
    # PutItem), and whose PutItem of THING#5 is throttled once: the unit is retried and writes the page again
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS = 0.01
    run = one_entity_run(sqlite_source, settings, 50, unit_rows=1000)
    unit = run.segments.get()
    hook = Faults(refuse_pk="THING#30", throttle_puts={"THING#5"})

    with fault_injection(hook):
        segment_run(segment_id=unit.pk, on_unit=lambda u: None, chain_seconds=0)

    unit.refresh_from_db()
    assert MigrationRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert unit.retries == 1  # the throttled PutItem made the unit retry (a transient error)
    assert hook.throttled == 1
    assert unit.write_units == pytest.approx(sum(hook.units))  # the write units hold (a throttled call costs 0)
    # then the throttled answer is in the unit's throttle retries, as a throttled BatchWriteItem's would be
    assert unit.throttle_retries == hook.throttled, (
        f"unit counted {unit.throttle_retries} throttle retries; DynamoDB throttled {hook.throttled} call(s)"
    )
