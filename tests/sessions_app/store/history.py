"""A history checker for the session store (issue 13): randomized schedules, an independent model, counts.

A run is a seeded schedule of steps on a few phones: turns (read, append a turn id to the session's log,
conditional save), deletes and expiries (of the version read), flushes, mode changes (dynamodb_only ↔
cached ↔ cached_write_behind, with store_mode_set's guards and revalidation), Redis partitioned (every
Redis call fails: the breaker opens, the stores bypass it) and healed, Redis killed and restarted
(a diskless server: every key lost), DynamoDB throttled or unreachable for a while. Any step may also run
*inside* another one: a fault hook on the DynamoDB client runs a second, random step in the middle of the
first one's call (a delete landing while the flush writes, a turn between a read and its fill...).

The checker keeps, per phone, the log every acknowledged operation implies (turn ids, increasing) or
"ended" after an acknowledged delete or expire, and compares every read (and, at the end, the store and
DynamoDB after a final flush) with it:

* lost: an acknowledged turn id missing from a later read of the same lifetime;
* resurrected: a session (or a turn of an ended lifetime) read after its acknowledged delete or expire;
* out of order: a log whose ids do not increase (a turn applied on top of a later one);
* duplicated: a turn id twice in one log.

Documented windows (docs/SESSION_STORE.md, loss-window table): when Redis dies or is cut off in
``cached_write_behind``, the turns (and deletes) not yet in DynamoDB at that moment may be lost; the
checker asks DynamoDB which those are at the moment of the fault and counts them as ``windowed`` instead.
(A window opened in write-behind may be observed after a mode change: it is counted in the mode of the
read.) Nothing else is allowed. The harness runs in one process; what it cannot show is listed in
docs/SESSION_STORE.md ("What the history checker does not cover").
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError

import lizzy.redis
from lizzy.dynamodb import dynamodb_get_item
from lizzy.errors import ServiceUnavailable
from lizzy.redis import RedisUnavailable, reset_redis
from lizzy.tables import SESSIONS
from sessions_app.models import StoreMode
from sessions_app.selectors import session_get
from sessions_app.services.ops import session_expire
from sessions_app.services.sessions import SessionConflict, session_delete, session_new, session_save
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.factory import stores_reset
from sessions_app.services.store.write_behind import sessions_flush
from sessions_app.services.store_modes import (
    ModeChangeRefused,
    hot_tier_revalidate,
    store_mode_check_transition,
    store_mode_current,
)
from tests.fixtures.dynamodb_hooks import client_error, fault_injection

MODES = (StoreMode.DYNAMODB_ONLY, StoreMode.CACHED, StoreMode.CACHED_WRITE_BEHIND)
ENDED = "ended"


@dataclass
class Counts:
    acknowledged: int = 0
    refused: int = 0  # conflicts and 503s: not acknowledged, nothing promised
    reads: int = 0
    lost: int = 0
    resurrected: int = 0
    out_of_order: int = 0
    duplicated: int = 0
    windowed: int = 0  # lost inside a documented window (write-behind, Redis gone)
    faults: Counter = field(default_factory=Counter)
    by_mode: dict[str, Counter] = field(default_factory=dict)
    trace: list[str] | None = None

    def bad(self) -> int:
        return self.lost + self.resurrected + self.out_of_order + self.duplicated

    def note(self, mode: str, what: str, n: int = 1) -> None:
        self.by_mode.setdefault(mode, Counter())[what] += n
        setattr(self, what, getattr(self, what) + n)
        if self.trace is not None and what != "windowed":
            self.trace.append(f"!! {what} x{n} in {mode}")


class _Tracked(dict):
    """The model, remembering every state each phone passed through (for reads overlapping writes)."""

    def __init__(self, initial: dict) -> None:
        super().__init__(initial)
        self.states: dict[str, list[Any]] = {phone: [value] for phone, value in initial.items()}

    def __setitem__(self, phone: str, value: Any) -> None:
        super().__setitem__(phone, value)
        self.states[phone].append(list(value) if isinstance(value, list) else value)


class History:
    def __init__(self, *, seed: int, phones: int, redis_server: Any, settings: Any) -> None:
        self.rng = random.Random(seed)
        self.phones = [f"+1206559{n:04d}" for n in range(phones)]
        self.model: dict[str, list[int] | str | None] = _Tracked(dict.fromkeys(self.phones))
        self.allowed: dict[str, set[int]] = {p: set() for p in self.phones}  # ids that may be lost (window)
        self.allowed_back: dict[str, bool] = dict.fromkeys(self.phones, False)  # an unflushed end may be undone
        self.counts = Counts(trace=[])
        # A model hidden by a window (Redis cut off, nothing written since): Redis may serve it again.
        self.revivable: dict[str, Any] = dict.fromkeys(self.phones)
        self.redis_server = redis_server
        self.settings = settings
        self.next_id = 0
        self.partitioned = False
        self.dynamodb_fault: str | None = None  # None | "throttled" | "unreachable"
        self.nesting = 0
        self.oracle = False
        self.nested_rate = 0.08
        self.log: list[str] = []

    # --- faults ---------------------------------------------------------------------------------

    def hook(self, operation: str, params: dict, send: Callable[[dict], dict]) -> dict:
        if self.oracle:
            return send(params)  # the checker's own look at DynamoDB: no fault, no nested step
        if self.dynamodb_fault == "unreachable":
            raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
        if self.dynamodb_fault == "throttled" and self.rng.random() < 0.3:
            raise client_error("ProvisionedThroughputExceededException", "throttled (history checker)", operation)
        if self.nesting == 0 and self.rng.random() < self.nested_rate:
            self.nesting += 1
            try:
                self.step(nested=True)
            finally:
                self.nesting -= 1
        return send(params)

    def _redis_call(self, real: Callable) -> Callable:
        def call(function: Any, *args: Any, **kwargs: Any) -> Any:
            if self.partitioned:
                raise RedisUnavailable("Redis is unreachable (history checker partition).")
            return real(function, *args, **kwargs)

        return call

    def _window(self) -> None:
        """Redis is going away in write-behind: what DynamoDB lacks now may be lost (documented)."""
        if store_mode_current() != StoreMode.CACHED_WRITE_BEHIND:
            return
        for phone in self.phones:
            self.oracle = True
            try:
                item = dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)
            finally:
                self.oracle = False
            live = item is not None and int(item.get("ttl", 0)) > time.time()
            durable_ids = set(item.get("sessionData", {}).get("log", [])) if live else set()
            model = self.model[phone]
            if isinstance(model, list):
                self.allowed[phone] |= set(model) - {int(i) for i in durable_ids}
            if model == ENDED and live:
                self.allowed_back[phone] = True

    # --- steps ----------------------------------------------------------------------------------

    def step(self, *, nested: bool = False) -> None:
        roll = self.rng.random()
        phone = self.rng.choice(self.phones)
        self.counts.trace.append(f"step roll={roll:.2f} phone={phone[-1]} nested={nested}")
        try:
            if roll < 0.55:
                self.turn(phone)
            elif roll < 0.62:
                self.end(phone, "delete")
            elif roll < 0.68:
                self.end(phone, "expire")
            elif roll < 0.80:
                self.flush()
            elif nested:
                self.turn(phone)
            elif roll < 0.87:
                self.change_mode()
            elif roll < 0.92:
                self.toggle_partition()
            elif roll < 0.95:
                self.kill_redis()
            else:
                self.toggle_dynamodb()
        except (SessionConflict, ServiceUnavailable) as exc:
            self.counts.trace.append(f"refused {type(exc).__name__}")
            self.counts.refused += 1

    def _ids(self, session: Any) -> list[int] | None:
        return None if session is None else [int(i) for i in session.session_data.get("log", [])]

    def check_read(self, phone: str, ids: list[int] | None, mode: str, since: int | None = None) -> None:
        """``since``: how many model states the phone had when the read began. A read overlapping writes
        (nested steps acknowledged while it ran) may return any state the phone passed through meanwhile:
        linearizable, not a loss."""
        self.counts.reads += 1
        model = self.model[phone]
        if since is not None:
            passed = self.model.states[phone][since - 1 : -1]
            if any((ids == state) if isinstance(state, list) else ids is None for state in passed):
                self.counts.trace.append(f"read {phone[-1]} overlapped writes, got an earlier state: {ids}")
                return
        self.counts.trace.append(
            f"read {phone[-1]} {mode} nest={self.nesting} got={ids} model={model} allowed={sorted(self.allowed[phone])}"
        )
        hidden = self.revivable[phone]
        if hidden is not None and (ids == hidden or (hidden == ENDED and ids is None)):
            self.counts.trace.append(f"read {phone[-1]} got the state a window had hidden back: {ids}")
            self.model[phone] = hidden
            self.revivable[phone] = None
            return
        if ids is not None:
            if len(set(ids)) != len(ids):
                self.counts.note(mode, "duplicated")
            if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
                self.counts.note(mode, "out_of_order")
        if model is None:
            if ids is not None:
                self.counts.note(mode, "resurrected")  # no acknowledged session ever: nothing may appear
            return
        if model == ENDED:
            if ids is not None:
                if self.allowed_back[phone]:
                    self.counts.note(mode, "windowed")
                    self.allowed_back[phone] = False
                    self.model[phone] = ids
                    self.revivable[phone] = ENDED
                else:
                    self.counts.note(mode, "resurrected")
            return
        if ids is None:
            missing = set(model)
        else:
            missing = set(model) - set(ids)
            if set(ids) - set(model) and not missing:
                self.counts.note(mode, "resurrected")  # ids the model never had for this lifetime
        if not missing:
            return
        allowed = missing & self.allowed[phone]
        if allowed:
            self.counts.note(mode, "windowed", len(allowed))
            self.allowed[phone] -= allowed
            if allowed == missing:
                self.revivable[phone] = list(model)
        if missing - allowed:
            self.counts.note(mode, "lost", len(missing - allowed))
        self.model[phone] = ids if ids is not None else None  # continue from what the product now says

    def turn(self, phone: str) -> None:
        mode = store_mode_current()
        since = len(self.model.states[phone])
        current = session_get(phone=phone)
        read_ids = self._ids(current)
        self.check_read(phone, read_ids, mode, since)
        self.next_id += 1
        turn_id = self.next_id
        session = current or session_new(phone=phone)
        session.session_data = {**session.session_data, "log": [*(read_ids or []), turn_id]}
        session_save(session=session, expected_version=current.version if current else None)
        self.counts.acknowledged += 1
        self.counts.by_mode.setdefault(mode, Counter())["acknowledged"] += 1
        self.counts.trace.append(f"ack turn {turn_id} on {phone[-1]} v{current.version if current else None}")
        # what was acknowledged: the read's log plus this turn. If the model moved meanwhile (a nested
        # step acknowledged something), the save should have been refused: whatever it dropped is lost.
        model = self.model[phone]
        if isinstance(model, list) and set(model) - set(read_ids or []):
            self.counts.note(mode, "lost", len(set(model) - set(read_ids or [])))
        if model == ENDED and read_ids is not None:
            self.counts.note(mode, "resurrected")
        self.model[phone] = [*(read_ids or []), turn_id]
        self.revivable[phone] = None

    def end(self, phone: str, how: str) -> None:
        mode = store_mode_current()
        since = len(self.model.states[phone])
        current = session_get(phone=phone)
        self.check_read(phone, self._ids(current), mode, since)
        if current is None:
            return
        if how == "delete":
            if not session_delete(phone=phone, expected_version=current.version):
                raise SessionConflict("nothing deleted")
        else:
            session_expire(phone=phone, expected_version=current.version)
        self.counts.acknowledged += 1
        self.counts.by_mode.setdefault(mode, Counter())["acknowledged"] += 1
        self.counts.trace.append(f"ack {how} {phone[-1]} v{current.version}")
        model = self.model[phone]
        if isinstance(model, list) and set(model) - set(self._ids(current) or []):
            self.counts.note(mode, "lost", len(set(model) - set(self._ids(current) or [])))
        self.model[phone] = ENDED
        self.revivable[phone] = None

    def flush(self) -> None:
        try:
            result = sessions_flush()
            self.counts.trace.append(f"flush {result}")
        except RedisUnavailable:
            self.counts.refused += 1

    def change_mode(self) -> None:
        current = store_mode_current()
        here = MODES.index(current) if current in MODES else 0
        target = MODES[max(0, min(len(MODES) - 1, here + self.rng.choice((-1, 1))))]
        if target == current:
            return
        # What store_mode_set does, minus the database row (the pinned setting is this "process"'s mode;
        # nested steps run on the flusher's threads, where the test database is out of reach).
        try:
            store_mode_check_transition(current=current, target=target, reason="history checker", force=False)
            hot_tier_revalidate(current=current, target=target, force=False, phase="before")
        except ModeChangeRefused:
            self.counts.faults["mode_change_refused"] += 1
            return
        self.settings.LIZZY_SESSION_STORE_MODE = target
        hot_tier_revalidate(current=current, target=target, force=False, phase="after")
        self.counts.faults[f"mode:{current}->{target}"] += 1
        self.counts.trace.append(f"mode {current} -> {target}")

    def toggle_partition(self) -> None:
        if not self.partitioned:
            self._window()
        self.partitioned = not self.partitioned
        self.counts.faults["partition" if self.partitioned else "partition_healed"] += 1
        self.counts.trace.append("partition" if self.partitioned else "partition healed")

    def kill_redis(self) -> None:
        if self.partitioned:
            return
        self._window()
        self.redis_server.kill()
        self.redis_server.start()
        reset_redis()
        self.counts.faults["redis_killed"] += 1
        self.counts.trace.append("redis killed")

    def toggle_dynamodb(self) -> None:
        self.dynamodb_fault = {None: self.rng.choice(("throttled", "unreachable")), "throttled": None}.get(
            self.dynamodb_fault
        )
        self.counts.faults[f"dynamodb:{self.dynamodb_fault or 'healthy'}"] += 1
        self.counts.trace.append(f"dynamodb {self.dynamodb_fault or 'healthy'}")

    # --- the run ----------------------------------------------------------------------------------

    def run(self, steps: int) -> Counts:
        real_call = lizzy.redis.redis_call
        with ExitStack() as stack:
            lizzy.redis.redis_call = self._redis_call(real_call)
            stack.callback(setattr, lizzy.redis, "redis_call", real_call)
            stack.enter_context(fault_injection(self.hook))
            for _ in range(steps):
                self.step()
            # heal every fault, flush everything, then check what the store and DynamoDB say
            self.partitioned = False
            self.dynamodb_fault = None
            self.nested_rate = 0.0
        redis_breaker.reset()
        self.final_check()
        return self.counts

    def final_check(self) -> None:
        mode = store_mode_current()
        for _ in range(3):
            sessions_flush()
        for phone in self.phones:
            self.check_read(phone, self._ids(session_get(phone=phone)), mode)
        stores_reset()
        for phone in self.phones:
            item = dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)
            live = item is not None and int(item.get("ttl", 0)) > time.time()
            ids = [int(i) for i in item.get("sessionData", {}).get("log", [])] if live else None
            self.check_read(phone, ids, f"{mode}:durable")
