"""Issue 13's proof: randomized schedules checked against an independent model (tests/sessions_app/store/history.py).

``make test`` runs a few fixed seeds of a short schedule, and one in two processes; ``make soak`` (LIZZY_SOAK=1)
runs many more seeds, longer. Lost, resurrected, out-of-order and duplicated acknowledged operations must all be
0; losses inside the documented windows (write-behind or parallel: Redis gone before a flush or a mirror write;
redis_only: Redis killed; the partial partition) are counted apart and reported.
"""

from __future__ import annotations

import os

import pytest

from sessions_app.models import StoreMode
from tests.figures import record_figure
from tests.sessions_app.store.history import History, TwoProcessHistory, Worker

SOAK = os.environ.get("LIZZY_SOAK") == "1"
# Seed 102 (like 103 and 110, at 120 steps) found losses in the Redis-backed modes before the parallel tombstone
# and store-of-record fixes of 2026-12-01: make test replays it.
SEEDS = range(100, 100 + int(os.environ.get("LIZZY_SOAK_SEEDS", "40"))) if SOAK else (1, 2, 3, 102)
STEPS = int(os.environ.get("LIZZY_SOAK_STEPS", "400")) if SOAK else 120
# Two processes (the partial partition): half the seeds. make test runs one seed of soak's, long enough for its
# partial partitions to meet writes (shorter schedules of seeds 1-4 never opened the window).
TWO_PROCESS_SEEDS = range(500, 500 + int(os.environ.get("LIZZY_SOAK_SEEDS", "40")) // 2) if SOAK else (501,)
TWO_PROCESS_STEPS = STEPS if SOAK else 300
HOT_TIER_MODES = (StoreMode.DYNAMODB_ONLY, StoreMode.CACHED, StoreMode.CACHED_WRITE_BEHIND)


@pytest.fixture
def checker_settings(settings, live_dynamodb, own_redis):
    settings.LIZZY_SESSION_STORE_MODE = "dynamodb_only"
    settings.LIZZY_MODE_CACHE_SECONDS = 0.0
    settings.LIZZY_BREAKER_RESET_SECONDS = 0.0  # each call after a failure is a trial: faults end quickly
    settings.LIZZY_BREAKER_THRESHOLD = 1
    settings.LIZZY_FLUSH_CONCURRENCY = 1  # nested steps draw from the seeded generator in a fixed order
    return settings


def assert_history_holds(name: str, counts, steps: int = STEPS) -> None:
    record_figure(
        name,
        steps=steps,
        acknowledged=counts.acknowledged,
        refused=counts.refused,
        reads=counts.reads,
        lost=counts.lost,
        resurrected=counts.resurrected,
        out_of_order=counts.out_of_order,
        duplicated=counts.duplicated,
        windowed=counts.windowed,
        partial=counts.partial,
        stale=counts.stale,
        faults=dict(counts.faults),
        by_mode={mode: dict(c) for mode, c in counts.by_mode.items()},
    )
    if counts.bad():
        print("\n".join(counts.trace[-3000:]))  # noqa: T201 - the schedule that broke, for the reader
    assert counts.acknowledged > steps // 8  # the schedule did real work (long DynamoDB outages refuse much)
    assert (counts.lost, counts.resurrected, counts.out_of_order, counts.duplicated) == (0, 0, 0, 0), counts.by_mode


@pytest.mark.parametrize("seed", SEEDS)
def test_no_acknowledged_operation_is_lost_resurrected_reordered_or_duplicated(seed, checker_settings, own_redis):
    history = History(seed=seed, phones=3, redis_server=own_redis, settings=checker_settings)
    assert_history_holds(f"store/history-checker-seed-{seed}", history.run(STEPS))


@pytest.mark.parametrize("seed", TWO_PROCESS_SEEDS)
def test_two_processes_and_a_partial_partition_lose_only_inside_its_window(seed, checker_settings, own_redis):
    # given a worker process with its own Redis client, breaker and stores, and Redis cut off from it alone
    worker = Worker(name="p1", settings=checker_settings, seed=seed)
    try:
        history = TwoProcessHistory(
            worker=worker, seed=seed, phones=3, redis_server=own_redis, settings=checker_settings, modes=HOT_TIER_MODES
        )
        # when the schedule's steps go to either process; then only the documented windows lose anything
        counts = history.run(TWO_PROCESS_STEPS)
    finally:
        worker.close()
    assert_history_holds(f"store/history-checker-two-processes-seed-{seed}", counts, steps=TWO_PROCESS_STEPS)
    assert counts.faults["partial_partition"]
    # the worker did real work (seed 501 at 400 steps: exactly 50 of its operations acknowledged, through seven
    # DynamoDB outages)
    assert counts.faults["acknowledged_by_p1"] >= TWO_PROCESS_STEPS // 8
    assert SOAK or counts.faults["fork"]  # make test's seed opens the partial window
