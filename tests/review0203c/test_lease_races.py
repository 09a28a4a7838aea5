"""The lease's conditional UPDATEs under PostgreSQL's READ COMMITTED (found by
``test_two_machines_with_four_threads_each_read_every_row_once``: units leased twice, a runner's lease lost
seconds after its take, with 300-second leases).

Django turns an UPDATE whose filter crosses a relation (``run__status``) into ``UPDATE ... WHERE id IN (SELECT
U0.id FROM segment U0 JOIN run U1 ... WHERE U0.fence = ... AND U0.lease_expires_at ...)``. An UPDATE that
waited for the row another take (or checkpoint) held re-checks its WHERE on the row's new version, but the
subquery's conditions were read from the snapshot the statement started with and are not read again: the
second of two takes of a free unit takes it too, and a checkpoint written under a fence that a takeover just
replaced goes through.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from migration_app.models import Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import Lease, LeaseLost, UnitLeased, _UnitPipeline, run_create, unit_lease
from migration_app.services.writer import KeyLedger, PageOutcome
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(dynamodb, sqlite_source):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and READ COMMITTED re-checks: the PostgreSQL control database")
    source = sqlite_source(THINGS_DDL, {"things": things_rows(20)})
    plan = plan_save(name="things", source_url=source, mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        return run_create(context=context)


def _wait_for_a_blocked_statement() -> None:
    """Until another backend of this database waits for a row lock (the other runner's statement)."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction keeps its first view otherwise
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the other runner's statement never waited for the row")


def _in_thread(target) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def body():
        try:
            result["value"] = target()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            result["value"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, result


def test_two_takes_of_a_free_unit_at_once_grant_one_lease(run):
    # given runner A's take of the free unit, its UPDATE done and not committed yet, and runner B's take waiting
    unit = run.segments.get()
    with transaction.atomic():
        lease_a = unit_lease(segment_id=unit.pk, owner="runner-a")
        thread, taken_b = _in_thread(lambda: unit_lease(segment_id=unit.pk, owner="runner-b"))
        _wait_for_a_blocked_statement()
    # when A's take commits
    thread.join(timeout=10)

    # then B's take is refused: A holds the lease, taken once
    unit.refresh_from_db()
    assert isinstance(taken_b["value"], UnitLeased), f"both runners hold the lease: {taken_b['value']}"
    assert (unit.lease_owner, unit.fence, unit.attempts) == ("runner-a", lease_a.fence, 1)


def test_a_checkpoint_racing_a_takeover_is_refused(run):
    # given runner A's lease expired, and runner B's takeover UPDATE done and not committed yet
    unit = run.segments.get()
    lease_a = unit_lease(segment_id=unit.pk, owner="runner-a")
    Segment.objects.filter(pk=unit.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    with plan_context(plan=run.plan) as context:
        entity = context.entity(unit.entity)
        relation = context.source.relation(entity)
        pipeline = _UnitPipeline(lease_a, run, entity, relation, "things[0]", KeyLedger(), None)
        with transaction.atomic():
            lease_b = unit_lease(segment_id=unit.pk, owner="runner-b")
            # A writes its page's checkpoint meanwhile (its statement waits for B's row)
            thread, checkpointed = _in_thread(lambda: pipeline._checkpoint(10, [10], PageOutcome(written=10)))
            _wait_for_a_blocked_statement()
        # when B's take commits
        thread.join(timeout=10)

    # then A's checkpoint is refused (LeaseLost): B's unit keeps B's fence and no checkpoint of A's
    unit.refresh_from_db()
    assert isinstance(checkpointed["value"], LeaseLost), f"A's checkpoint went through: {checkpointed['value']}"
    assert (unit.fence, unit.lease_owner, unit.last_key, unit.rows_read) == (lease_b.fence, "runner-b", None, 0)
    assert isinstance(lease_a, Lease)
