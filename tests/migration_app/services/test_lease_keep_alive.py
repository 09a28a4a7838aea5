"""Leases renewed while a unit waits for its chunks (``_UnitPipeline._keep_alive``, issue 14): a chunk that
takes longer than the lease (throttling retried, a slow endpoint) does not let the lease expire under the
chunks still queued behind it, the unit's own nor the chain's unit taken ahead; a unit taken ahead whose lease
is lost meanwhile is dropped, its chunks not sent yet cancelled, and every other row is written once."""

from __future__ import annotations

import time

from migration_app.models import RunStatus, Segment
from migration_app.services import runs
from migration_app.services.runs import segment_run
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import drain_queue
from tests.review_chain.helpers import one_entity_run


def _slow_chunk_of(key: str, seconds: float, sent: list[str]):
    """A hook that holds the BatchWriteItem call carrying ``key`` for ``seconds`` (once) and records every key."""
    held = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            keys = [request["PutRequest"]["Item"]["PK"]["S"] for request in requests]
            if key in keys and not held:
                held.append(key)
                time.sleep(seconds)
            sent.extend(keys)
        return send(params)

    return hook


def test_a_chunk_slower_than_the_lease_keeps_both_leases_renewed(db, dynamodb, sqlite_source, settings, monkeypatch):
    # given leases of 1 s and the first unit's last chunk held 2.5 s, while the chain has taken the next unit
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    run = one_entity_run(sqlite_source, settings, 150)
    first = run.segments.get().pk
    renewals: list[tuple[int, float]] = []
    expired: list[int] = []
    renew = runs.lease_renew

    def recorded(*, lease):
        unit = Segment.objects.get(pk=lease.segment_id)
        if unit.lease_expires_at is not None and unit.lease_expires_at < runs.timezone.now():
            expired.append(lease.segment_id)  # renewed too late: another runner could have taken it
        renewals.append((lease.segment_id, time.monotonic()))
        return renew(lease=lease)

    monkeypatch.setattr(runs, "lease_renew", recorded)
    sent: list[str] = []

    # when one task chains the units
    with fault_injection(_slow_chunk_of("THING#50", 2.5, sent)):
        segment_run(segment_id=first, on_unit=lambda unit: None, chain_seconds=60)

    # then both leases were renewed during the wait, about every tenth of the lease, never after expiring
    renewed = {unit for unit, _at in renewals}
    assert first in renewed
    assert len(renewed - {first}) >= 1  # the unit taken ahead
    assert len([unit for unit, _at in renewals if unit == first]) >= 10
    assert expired == []
    # and the run wrote every row once
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 150, 150)
    assert sorted(sent) == sorted(f"THING#{n}" for n in range(1, 151))


def test_a_unit_taken_ahead_whose_lease_is_lost_while_the_unit_before_drains_is_dropped(
    db, dynamodb, sqlite_source, settings, monkeypatch
):
    # given pages of 10 rows, the first unit's last chunk held 1 s (leases of 1 s), and the unit the chain took
    # ahead taken over during that wait by another runner, which then dies (never renews)
    settings.LIZZY_MIGRATION_LEASE_SECONDS = 1
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 10
    run = one_entity_run(sqlite_source, settings, 150)
    first = run.segments.get().pk
    renew = runs.lease_renew
    taken_over: list[int] = []

    def takeover_then_renew(*, lease):
        if lease.segment_id != first and not taken_over:
            taken_over.append(lease.segment_id)
            Segment.objects.filter(pk=lease.segment_id).update(fence=lease.fence + 1, lease_owner="other:1:1:x")
        return renew(lease=lease)

    monkeypatch.setattr(runs, "lease_renew", takeover_then_renew)
    sent: list[str] = []

    # when one task chains the units
    queue: list[int] = []
    with fault_injection(_slow_chunk_of("THING#50", 1.0, sent)):
        segment_run(segment_id=first, on_unit=lambda unit: queue.append(unit.pk), chain_seconds=60)
        drain_queue(queue)  # the units' own messages: the one taken over is skipped (leased), the rest run

    # then this runner stopped writing that unit at the take-over: of its rows only the head pages' (two pages
    # of 10, in flight or sent before) went out twice, once more by the unit's own task after the other runner's
    # lease expired (it never renewed); every row was checkpointed once and the run succeeded
    (lost,) = taken_over
    unit = Segment.objects.get(pk=lost)
    assert unit.done
    assert unit.attempts >= 2  # taken by the chain, then by its own task (the other runner's take is simulated)
    twice = {key for key in sent if sent.count(key) > 1}
    first_row = 51 if unit.index == 1 else 101
    assert twice <= {f"THING#{n}" for n in range(first_row, first_row + 20)}
    assert set(sent) == {f"THING#{n}" for n in range(1, 151)}
    run.refresh_from_db()
    assert (run.status, run.rows_read) == (RunStatus.SUCCEEDED, 150)
