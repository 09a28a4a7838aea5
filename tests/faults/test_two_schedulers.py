"""Two beat schedulers at once (django-celery-beat#337: a duplicated beat is a known way to get there).

Two flushers loop side by side while sessions keep changing: still one flush at a time, nothing lost.
Two advances of one migration plan prepared at the same time: one phase transition, not two.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from lizzy.dynamodb import dynamodb_batch_get
from lizzy.tables import SESSIONS
from migration_app.models import Phase, PhaseTransition
from migration_app.services.phases import ERR_PHASE_MOVED, PhaseGuardFailed, plan_advance
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store import write_behind
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from tests.figures import record_figure
from tests.fixtures.dynamodb_hooks import fault_injection
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

PHONES = [f"+1206558{n:04d}" for n in range(40)]


def test_two_flush_schedulers_flush_one_at_a_time_and_lose_nothing(live_dynamodb, own_redis, settings, monkeypatch):
    settings.LIZZY_SESSION_STORE_MODE = "cached_write_behind"
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    lock = threading.Lock()
    holders, peak, writes_outside = [0], [0], [0]
    real_acquire, real_release = write_behind.redis_lock_acquire, write_behind.redis_lock_release

    def acquire(**kwargs):
        token = real_acquire(**kwargs)
        if token is not None:
            with lock:
                holders[0] += 1
                peak[0] = max(peak[0], holders[0])
        return token

    def release(**kwargs):
        with lock:
            holders[0] -= 1
        return real_release(**kwargs)

    monkeypatch.setattr(write_behind, "redis_lock_acquire", acquire)
    monkeypatch.setattr(write_behind, "redis_lock_release", release)

    def slow_batches(operation, params, send):
        if operation == "PutItem" and params.get("TableName") == SESSIONS.name:  # the flush's conditional writes
            with lock:
                if holders[0] != 1:
                    writes_outside[0] += 1  # a flush write while no flush (or two) held the lock
            threading.Event().wait(0.02)  # a flush that takes a while, so the two beats overlap
        return send(params)

    stop = threading.Event()
    results: list[str] = []

    def beat() -> None:
        while not stop.is_set():
            results.append(sessions_flush().status)

    with fault_injection(slow_batches):
        beats = [threading.Thread(target=beat) for _ in range(2)]
        for thread in beats:
            thread.start()
        for round_number in range(3):  # sessions keep changing while both beats run
            for phone in PHONES:
                current = session_get(phone=phone)
                current.session_data["turns"] = round_number
                session_save(session=current, expected_version=current.version)
        stop.set()
        for thread in beats:
            thread.join(timeout=30)
    sessions_flush()

    items = dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": p} for p in PHONES], consistent=True)
    stored = {item["phone"]: int(item["version"]) for item in items}
    lost = sum(1 for phone in PHONES if stored.get(phone) != session_get(phone=phone).version)
    record_figure(
        "faults/two-flush-schedulers",
        flushes=results.count("flushed"),
        locked=results.count("locked"),
        peak_flushes_holding_the_lock=peak[0],
        batch_writes_outside_one_flush=writes_outside[0],
        lost=lost,
    )
    assert results.count("locked") > 0, "the two beats never overlapped: the test tested nothing"
    assert peak[0] == 1
    assert writes_outside[0] == 0
    assert flush_backlog().size == 0
    assert lost == 0


@pytest.fixture
def plan(db, dynamodb, tmp_path):
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as source:
        source.executescript(THINGS_DDL)
        for row in things_rows(5):
            source.execute("INSERT INTO things VALUES (:id, :name, :price, :active, :updated_at, :tags)", row)
    plan = plan_save(name="two-beats", source_url=f"sqlite:///{path}", mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    return plan


def test_two_advances_prepared_at_once_record_one_transition(plan):
    # given: two schedulers (or two admins) each holding the plan in SETUP
    first = type(plan).objects.get(pk=plan.pk)
    second = type(plan).objects.get(pk=plan.pk)
    # when: both advance it to BACKFILL
    plan_advance(plan=first, to_phase=Phase.BACKFILL, actor="beat-1", reason="scheduled")
    with pytest.raises(PhaseGuardFailed) as refused:
        plan_advance(plan=second, to_phase=Phase.BACKFILL, actor="beat-2", reason="scheduled")
    # then: one transition, and the second caller is told why
    assert PhaseTransition.objects.filter(plan=plan, to_phase=Phase.BACKFILL).count() == 1
    assert refused.value.message == ERR_PHASE_MOVED.format(plan="two-beats", phase="setup", current="backfill")
    plan.refresh_from_db()
    assert plan.phase == Phase.BACKFILL
