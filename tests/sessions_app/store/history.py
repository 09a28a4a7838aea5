"""A history checker for the session store (issue 13): randomized schedules, an independent model, counts.

A run is a seeded schedule of steps on a few phones: turns (read, append a turn id to the session's log,
conditional save), deletes and expiries (of the version read), flushes, mode changes (one step at a time
along redis_only ↔ parallel ↔ cutover ↔ dynamodb_only ↔ cached ↔ cached_write_behind, with store_mode_set's
guards, the hot-tier and the store-of-record revalidations), Redis partitioned (every Redis call fails: the
breaker opens, the stores bypass it) and healed, Redis killed and restarted (a diskless server: every key
lost), DynamoDB throttled or unreachable for a while. Any step may also run *inside* another one: a fault
hook on the DynamoDB client runs a second, random step in the middle of the first one's call (a delete
landing while the flush writes, a turn between a read and its fill...). ``TwoProcessHistory`` sends half the
steps to a second process (history_worker.py) and adds the partial partition: Redis cut off from it alone.

The checker keeps, per phone, the log every acknowledged operation implies (turn ids, increasing) or
"ended" after an acknowledged delete or expire, and compares every read (and, at the end, the store and,
where DynamoDB is the store of record, DynamoDB after a final flush) with it:

* lost: an acknowledged turn id missing from a later read of the same lifetime;
* resurrected: a session (or a turn of an ended lifetime) read after its acknowledged delete or expire;
* out of order: a log whose ids do not increase (a turn applied on top of a later one);
* duplicated: a turn id twice in one log.

Documented windows (docs/SESSION_STORE.md, loss-window table), counted as ``windowed`` instead: when Redis
dies or is cut off in ``cached_write_behind`` or ``parallel``, what DynamoDB lacks at that moment (unflushed
writes; writes whose DynamoDB mirror failed), asked of DynamoDB at the moment of the fault; when Redis dies in
``redis_only``, everything (and DynamoDB's copy of an earlier period may show again). A window opened in one
mode may be observed after a mode change: it is counted in the mode of the read. The stale-copy window (a
process reading Redis's older copy of a phone another process wrote while Redis was away from it) has its own
count (``partial``, and ``stale`` for the reads of that copy): ``TwoProcessHistory``. Nothing
else is allowed. What it cannot show is listed in docs/SESSION_STORE.md ("What the history checker does not
cover").
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import EndpointConnectionError

import lizzy.redis
from lizzy import metrics
from lizzy.dynamodb import dynamodb_get_item
from lizzy.errors import ServiceUnavailable
from lizzy.redis import RedisUnavailable, reset_redis
from lizzy.tables import SESSIONS
from sessions_app.models import StoreMode
from sessions_app.selectors import session_get
from sessions_app.services.ops import session_expire
from sessions_app.services.sessions import SessionConflict, session_delete, session_new, session_save
from sessions_app.services.store import cached
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.bypass import REGISTRY_PK
from sessions_app.services.store.factory import stores_reset
from sessions_app.services.store.write_behind import sessions_flush
from sessions_app.services.store_modes import (
    MODE_ORDER,
    ModeChangeRefused,
    hot_tier_revalidate,
    store_mode_check_transition,
    store_mode_current,
    store_of_record_revalidate,
)
from tests.fixtures.dynamodb_hooks import client_error, fault_injection

MODES = MODE_ORDER  # every mode, one step at a time as store_mode_set allows (rollbacks with a reason)
# Where a Redis fault can lose what DynamoDB lacks (docs/SESSION_STORE.md, loss-window table): write-behind
# (unflushed writes) and parallel (Redis is the store of record: a write whose DynamoDB mirror failed).
DURABLE_WINDOW_MODES = (StoreMode.CACHED_WRITE_BEHIND, StoreMode.PARALLEL)
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
    windowed: int = 0  # lost inside a documented window (write-behind or parallel: Redis gone; redis_only: killed)
    partial: int = 0  # lost inside the partial-partition window (another process's turns on a stale hot copy)
    stale: int = 0  # reads of that stale hot copy while the partial partition lasts (documented, not a loss)
    faults: Counter = field(default_factory=Counter)
    by_mode: dict[str, Counter] = field(default_factory=dict)
    trace: list[str] | None = None

    def bad(self) -> int:
        return self.lost + self.resurrected + self.out_of_order + self.duplicated

    def note(self, mode: str, what: str, n: int = 1) -> None:
        self.by_mode.setdefault(mode, Counter())[what] += n
        setattr(self, what, getattr(self, what) + n)
        if self.trace is not None and what not in ("windowed", "partial", "stale"):
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
    def __init__(
        self, *, seed: int, phones: int, redis_server: Any, settings: Any, modes: tuple[str, ...] = MODES
    ) -> None:
        self.rng = random.Random(seed)
        self.registry_rng = random.Random(-seed)
        self.phones = [f"+1206559{n:04d}" for n in range(phones)]
        self.model: dict[str, list[int] | str | None] = _Tracked(dict.fromkeys(self.phones))
        self.allowed: dict[str, set[int]] = {p: set() for p in self.phones}  # ids that may be lost (window)
        # an unflushed end (or a redis_only lifetime) may be undone: False, or the window's name
        self.allowed_back: dict[str, str | bool] = dict.fromkeys(self.phones, False)
        self.counts = Counts(trace=[])
        # A model hidden by a window (Redis cut off, nothing written since): Redis may serve it again.
        self.revivable: dict[str, Any] = dict.fromkeys(self.phones)
        self.redis_server = redis_server
        self.settings = settings
        self.next_id = 0
        self.partitioned = False
        self.dynamodb_fault: str | None = None  # None | "throttled" | "unreachable"
        self.nesting = 0
        # phone → the states the writes in progress will leave, outermost first: a nested step runs inside an
        # outer write's DynamoDB call (parallel mirrors after Redis has the write), so its read may see the
        # outer write before it is acknowledged: concurrent, hence linearizable, not a resurrection
        self.in_flight: dict[str, list[dict[str, Any]]] = {p: [] for p in self.phones}
        self.oracle = False
        self.nested_rate = 0.08
        self.modes: tuple[str, ...] = modes
        self.log: list[str] = []

    # --- faults ---------------------------------------------------------------------------------

    def hook(self, operation: str, params: dict, send: Callable[[dict], dict]) -> dict:
        if self.oracle:
            return send(params)  # the checker's own look at DynamoDB: no fault, no nested step
        if self.dynamodb_fault == "unreachable":
            raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
        # The bypass registry's calls draw from a generator of their own, so a seed's schedule stays the one
        # it was before the registry existed until the product's behaviour differs (seeds replay defects).
        rng = self.registry_rng if REGISTRY_PK in str(params) else self.rng
        if self.dynamodb_fault == "throttled" and rng.random() < 0.3:
            raise client_error("ProvisionedThroughputExceededException", "throttled (history checker)", operation)
        if self.nesting == 0 and rng.random() < self.nested_rate:
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

    def _durable_ids(self, phone: str) -> list[int] | None:
        """The checker's own look at DynamoDB (no fault, no nested step): the live item's log, or None."""
        self.oracle = True
        try:
            item = dynamodb_get_item(table=SESSIONS.name, key={"phone": phone}, consistent=True)
        finally:
            self.oracle = False
        live = item is not None and int(item.get("ttl", 0)) > time.time()
        return [int(i) for i in item.get("sessionData", {}).get("log", [])] if live else None

    def _window(self, kind: str = "partition", phones: list[str] | None = None) -> None:
        """Redis is going away (``kind``: partition or kill): open the window the mode documents.

        write-behind and parallel: what DynamoDB lacks now may be lost (unflushed, or a failed mirror);
        redis_only, killed: everything Redis held (DynamoDB's leftovers of earlier modes may show again);
        redis_only partitioned, and the DynamoDB-backed modes: nothing (503s, or DynamoDB serves)."""
        mode = store_mode_current()
        everything = mode == StoreMode.REDIS_ONLY and kind == "kill"
        if mode not in DURABLE_WINDOW_MODES and not everything:
            return
        for phone in phones or self.phones:
            durable = self._durable_ids(phone)
            model = self.model[phone]
            if isinstance(model, list):
                self.allowed[phone] |= set(model) - (set() if everything else set(durable or []))
            if (model == ENDED or everything) and durable is not None:
                self.allowed_back[phone] = "windowed"

    # --- steps ----------------------------------------------------------------------------------

    def step(self, *, nested: bool = False) -> None:
        roll = self.rng.random()
        phone = self.rng.choice(self.phones)
        via = self.pick_client()
        self.counts.trace.append(f"step roll={roll:.2f} phone={phone[-1]} nested={nested} via={self.name_of(via)}")
        try:
            if roll < 0.55:
                self.turn(phone, via)
            elif roll < 0.62:
                self.end(phone, "delete", via)
            elif roll < 0.68:
                self.end(phone, "expire", via)
            elif roll < 0.80:
                self.flush(via)
            elif nested:
                self.turn(phone, via)
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

    # One process here; TwoProcessHistory sends some steps to a worker process (a ``Worker``).
    def pick_client(self) -> Worker | None:
        return None

    def name_of(self, via: Worker | None) -> str:
        return "p0" if via is None else via.name

    def _ids(self, session: Any) -> list[int] | None:
        return None if session is None else [int(i) for i in session.session_data.get("log", [])]

    def stale_read(self, phone: str, ids: list[int] | None, by: str) -> bool:
        """A read of a copy a documented window allows to be stale (the partial partition): none here."""
        return False

    def check_read(
        self, phone: str, ids: list[int] | None, mode: str, since: int | None = None, by: str = "p0"
    ) -> bool:
        """``since``: how many model states the phone had when the read began. A read overlapping writes
        (nested steps acknowledged while it ran) may return any state the phone passed through meanwhile:
        linearizable, not a loss. Returns False when the read was of a stale copy inside a documented
        window (what a write based on it then acknowledges is on that copy, not on the model)."""
        self.counts.reads += 1
        model = self.model[phone]
        if since is not None:
            passed = self.model.states[phone][since - 1 : -1]
            if any((ids == state) if isinstance(state, list) else ids is None for state in passed):
                self.counts.trace.append(f"read {phone[-1]} overlapped writes, got an earlier state: {ids}")
                return True
        outer = self.in_flight[phone][0] if self.nesting and self.in_flight[phone] else None
        pending = None if outer is None else outer["state"]
        if outer is not None and not outer["seen"] and (ids == pending if isinstance(pending, list) else ids is None):
            self.counts.trace.append(f"read {phone[-1]} saw the outer write in flight: {ids}")
            outer["seen"] = True
            self.model[phone] = pending
            self.revivable[phone] = None
            return True
        self.counts.trace.append(
            f"read {phone[-1]} {mode} by={by} nest={self.nesting} got={ids} model={model} "
            f"allowed={sorted(self.allowed[phone])}"
        )
        # A state a window hid (nothing acknowledged since) is the model's, not a stale copy: it was acknowledged
        # on the model, after any fork of the phone (an acknowledgement clears it), so it is checked first.
        hidden = self.revivable[phone]
        if hidden is not None and (ids == hidden or (hidden == ENDED and ids is None)):
            self.counts.trace.append(f"read {phone[-1]} got the state a window had hidden back: {ids}")
            self.model[phone] = hidden
            self.revivable[phone] = None
            return True
        if ids != (model if isinstance(model, list) else None) and self.stale_read(phone, ids, by):
            self.counts.trace.append(f"read {phone[-1]} by {by}: the stale hot copy of the partial partition")
            self.counts.note(mode, "stale")
            return False
        if ids is not None:
            if len(set(ids)) != len(ids):
                self.counts.note(mode, "duplicated")
            if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
                self.counts.note(mode, "out_of_order")
        if model is None or model == ENDED:
            if ids is not None:
                if self.allowed_back[phone]:
                    # an end (or, redis_only killed, a whole lifetime) inside a window: DynamoDB's older copy
                    self.counts.note(mode, self.allowed_back[phone])
                    self.allowed_back[phone] = False
                    self.model[phone] = ids
                    self.revivable[phone] = model
                else:
                    self.counts.note(mode, "resurrected")  # ended, or never acknowledged: nothing may appear
            return True
        if ids is None:
            missing = set(model)
        else:
            missing = set(model) - set(ids)
            if set(ids) - set(model) and not missing:
                self.counts.note(mode, "resurrected")  # ids the model never had for this lifetime
        if not missing:
            return True
        allowed = missing & self.allowed[phone]
        if allowed:
            self.counts.note(mode, "windowed", len(allowed))
            self.allowed[phone] -= allowed
            missing -= allowed
            if not missing:
                self.revivable[phone] = list(model)
        if missing:
            self.counts.note(mode, "lost", len(missing))
        self.model[phone] = ids if ids is not None else None  # continue from what the product now says
        return True

    def _acknowledged(self, phone: str, mode: str, by: str, what: str) -> None:
        self.counts.acknowledged += 1
        self.counts.by_mode.setdefault(mode, Counter())["acknowledged"] += 1
        self.counts.trace.append(f"ack {what} on {phone[-1]} by {by}")
        if by != "p0":
            self.counts.faults[f"acknowledged_by_{by}"] += 1
        self.allowed_back[phone] = False  # DynamoDB's older copy is older than this write too

    def on_stale_ack(self, phone: str, ids: list[int] | None) -> None:
        """An acknowledged write on a stale copy inside a documented window (TwoProcessHistory)."""
        raise AssertionError("a stale read outside a documented window")

    def turn(self, phone: str, via: Worker | None = None) -> None:
        mode = store_mode_current()
        since = len(self.model.states[phone])
        if via is None:
            current = session_get(phone=phone)
            read_ids = self._ids(current)
            on_model = self.check_read(phone, read_ids, mode, since)
            self.next_id += 1  # after the read: a nested step (inside it) takes an earlier id
            turn_id = self.next_id
            session = current or session_new(phone=phone)
            session.session_data = {**session.session_data, "log": [*(read_ids or []), turn_id]}
            with self._writing(phone, [*(read_ids or []), turn_id]) as write:
                session_save(session=session, expected_version=current.version if current else None)
        else:
            self.next_id += 1  # nothing nests in the worker's call
            turn_id = self.next_id
            answer = via.call(command="turn", phone=phone, turn=turn_id)
            if "read" not in answer:
                via.raise_refusal(answer)  # the read itself was refused
            read_ids, mode = answer["read"], answer["mode"]
            on_model = self.check_read(phone, read_ids, mode, since, by=via.name)
            via.raise_refusal(answer)
        self._acknowledged(phone, mode, self.name_of(via), f"turn {turn_id}")
        if not on_model:
            self.on_stale_ack(phone, [*(read_ids or []), turn_id])
            return
        if via is None and write["seen"]:
            self.after_ack(phone, via)  # a nested read saw it take effect: the model moved through it then
            return
        # what was acknowledged: the read's log plus this turn. If the model moved meanwhile (a nested
        # step acknowledged something), the save should have been refused: whatever it dropped is lost.
        model = self.model[phone]
        if isinstance(model, list) and set(model) - set(read_ids or []):
            self.counts.note(mode, "lost", len(set(model) - set(read_ids or [])))
        if model == ENDED and read_ids is not None:
            self.counts.note(mode, "resurrected")
        self.model[phone] = [*(read_ids or []), turn_id]
        self.revivable[phone] = None
        self.after_ack(phone, via)

    def after_ack(self, phone: str, via: Worker | None) -> None:
        """TwoProcessHistory: a write by a process Redis is cut off from opens the partial window."""

    @contextlib.contextmanager
    def _writing(self, phone: str, state: Any) -> Iterator[dict[str, Any]]:
        """A write in progress that will leave ``state``; ``seen`` once a nested read saw it take effect
        (the model then holds it; if the write is refused after all, a later read that no longer finds it
        counts as lost or resurrected, as for any write)."""
        entry: dict[str, Any] = {"state": state, "seen": False}
        self.in_flight[phone].append(entry)
        try:
            yield entry
        finally:
            self.in_flight[phone].pop()

    def end(self, phone: str, how: str, via: Worker | None = None) -> None:
        mode = store_mode_current()
        since = len(self.model.states[phone])
        if via is None:
            current = session_get(phone=phone)
            read_ids = self._ids(current)
            on_model = self.check_read(phone, read_ids, mode, since)
            if current is None:
                return
            with self._writing(phone, ENDED) as write:
                if how == "delete":
                    if not session_delete(phone=phone, expected_version=current.version):
                        raise SessionConflict("nothing deleted")
                else:
                    session_expire(phone=phone, expected_version=current.version)
        else:
            answer = via.call(command="end", phone=phone, how=how)
            if "read" not in answer:
                via.raise_refusal(answer)  # the read itself was refused
            read_ids, mode = answer["read"], answer["mode"]
            on_model = self.check_read(phone, read_ids, mode, since, by=via.name)
            if answer["outcome"] == "nothing":
                return
            via.raise_refusal(answer)
        self._acknowledged(phone, mode, self.name_of(via), how)
        if not on_model:
            self.on_stale_ack(phone, None)
            return
        if via is None and write["seen"]:
            self.after_ack(phone, via)
            return
        model = self.model[phone]
        if isinstance(model, list) and set(model) - set(read_ids or []):
            self.counts.note(mode, "lost", len(set(model) - set(read_ids or [])))
        self.model[phone] = ENDED
        self.revivable[phone] = None
        self.after_ack(phone, via)

    def flush(self, via: Worker | None = None) -> None:
        if via is not None:
            answer = via.call(command="flush")
            self.counts.trace.append(f"flush by {via.name} {answer}")
            if answer["outcome"] != "ack":
                self.counts.refused += 1
            return
        try:
            result = sessions_flush(mode=store_mode_current())
            self.counts.trace.append(f"flush {result}")
        except RedisUnavailable:
            self.counts.refused += 1

    def change_mode(self) -> None:
        current = store_mode_current()
        here = self.modes.index(current) if current in self.modes else 0
        target = self.modes[max(0, min(len(self.modes) - 1, here + self.rng.choice((-1, 1))))]
        if target == current:
            return
        # What store_mode_set does, minus the database row (the pinned setting is this "process"'s mode;
        # nested steps run on the flusher's threads, where the test database is out of reach).
        try:
            store_mode_check_transition(current=current, target=target, reason="history checker", force=False)
            hot_tier_revalidate(current=current, target=target, force=False, phase="before")
            store_of_record_revalidate(current=current, target=target, force=False, phase="before")
        except ModeChangeRefused:
            self.counts.faults["mode_change_refused"] += 1
            return
        self.settings.LIZZY_SESSION_STORE_MODE = target
        hot_tier_revalidate(current=current, target=target, force=False, phase="after")
        store_of_record_revalidate(current=current, target=target, force=False, phase="after")
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
        self._window("kill")
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
            sessions_flush(mode=mode)
        for phone in self.phones:
            self.check_read(phone, self._ids(session_get(phone=phone)), mode)
        if mode in (StoreMode.REDIS_ONLY, StoreMode.PARALLEL):
            return  # Redis is the store of record there: DynamoDB holds a copy, not the answer
        stores_reset()
        for phone in self.phones:
            self.check_read(phone, self._durable_ids(phone), f"{mode}:durable")


# --- several processes --------------------------------------------------------------------------------

ERR_WORKER_DIED = "history worker {name} died (exit code {code}); its stderr ends with:\n{tail}"
WORKER_SETTINGS = (
    "AWS_ENDPOINT_URL_DYNAMODB",
    "LIZZY_ENV",
    "LIZZY_SESSION_REDIS_URL",
    "LIZZY_REDIS_PREFIX",
    "REDIS_SOCKET_TIMEOUT",
    "LIZZY_SESSION_STORE_MODE",
    "LIZZY_MODE_CACHE_SECONDS",
    "LIZZY_BREAKER_RESET_SECONDS",
    "LIZZY_BREAKER_THRESHOLD",
    "LIZZY_FLUSH_CONCURRENCY",
    "LIZZY_SHADOW_WINDOW_SECONDS",
)


class Worker:
    """A second product process (tests/sessions_app/store/history_worker.py) driven over a pipe."""

    def __init__(self, *, name: str, settings: Any, seed: int) -> None:
        self.name = name
        overrides = {setting: getattr(settings, setting) for setting in WORKER_SETTINGS}
        overrides["LIZZY_HISTORY_SEED"] = seed
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sessions_app.store.history_worker", json.dumps(overrides)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
        )
        self._answer()  # "ready"

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            self.stderr.seek(0)
            tail = self.stderr.read()[-3000:]
            raise RuntimeError(ERR_WORKER_DIED.format(name=self.name, code=self.process.returncode, tail=tail))
        return json.loads(line)

    def call(self, **command: Any) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if answer["outcome"] == "error":
            raise RuntimeError(answer["error"])
        self.last = answer  # with its recovery and registry state after the command (TwoProcessHistory)
        return answer

    @staticmethod
    def raise_refusal(answer: dict) -> None:
        outcome = answer["outcome"]
        if outcome == "refused:SessionConflict":
            raise SessionConflict(f"refused in the worker ({outcome})")
        if outcome.startswith("refused:"):
            raise ServiceUnavailable(f"refused in the worker ({outcome})")

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"command": "stop"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)
        self.stderr.close()


class TwoProcessHistory(History):
    """The schedule's clients in two processes: this one (p0) and a worker (p1) with its own Redis client,
    breaker, stores and bypass memory. Adds the partial partition: Redis unreachable from p1 only.

    The stale-copy window (docs/SESSION_STORE.md, loss-window table). A process W that Redis is away from
    (p1 in a partial partition, either process in a full one) and that writes a phone in ``cached`` or
    ``cached_write_behind`` writes it through to DynamoDB and registers it in the shared bypass registry:
    the phone is *forked*. Until the window closes, the other process R may read the Redis copy of that
    phone as it was when W was cut off, or as R moved it since (``stale``, not a loss), **only if R saw no
    Redis error** since its last recovery (here: R ran no session step in those modes while Redis was away
    from it); what R acknowledges on that copy is lost when the window closes (``partial``). It closes at
    the first of:

    * the end of a session step in those modes by a process that had seen Redis fail and is no longer
      cut off, once its recovery has run (the product says none is pending): it applied the whole registry,
      so the forks acknowledged before that step began are closed (and all of its own, registered or not);
    * a flush run that read and applied the registry: the forks acknowledged before the run began;
    * a Redis kill (no copy is left).

    A fork whose registration DynamoDB refused (counted by the product) closes only by W's own recovery
    or a kill. What W drops when it writes a phone whose unflushed turns DynamoDB lacks is the first
    write-behind row (``windowed``). Nothing else may be lost or come back: reads of the stale copy by a
    process that saw Redis fail, or after the window closed, are losses; so are W's own.
    """

    HOT_MODES = (StoreMode.CACHED, StoreMode.CACHED_WRITE_BEHIND)

    def __init__(self, *, worker: Worker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self.cut_off = False  # Redis unreachable from the worker only (the partial partition)
        self.p1_cut = False  # the worker cannot reach Redis: cut off, or the whole of Redis partitioned
        # process -> phone -> index of the phone's model state when Redis went away from that process
        self.cut_since: dict[str, dict[str, int]] = {"p0": {}, "p1": {}}
        self.saw_error = {"p0": False, "p1": False}  # ran a hot-mode session step while Redis was away
        self.seq = 0  # session steps and flushes begun, nested ones included
        self.failed_before: dict[str, list[float]] = {"p0": [], "p1": []}  # per step in progress
        # phone -> (writer, sequence number of the acknowledgement, registered) while its window is open
        self.forked: dict[str, tuple[str, int, bool]] = {}
        self.hot: dict[str, list[list[int] | None]] = {}  # the other process's states on the stale copy
        self.pending: Counter = Counter()  # the other process's acknowledgements on the stale copy

    def pick_client(self) -> Worker | None:
        return self.worker if self.rng.random() < 0.5 else None

    def _cut(self, name: str) -> bool:
        return self.p1_cut if name == "p1" else self.partitioned

    def _state(self, name: str) -> tuple[bool, float]:
        """(a recovery is pending, registrations DynamoDB refused so far) in that process."""
        if name == "p1":
            last = getattr(self.worker, "last", {})
            return bool(last.get("recovery_pending")), float(last.get("register_failed", 0))
        return cached.recovery_pending(), metrics.SESSION_BYPASS_REGISTRY.labels("register_failed")._value.get()

    def _session_step(self, name: str, step: Callable[[], None], phone: str) -> None:
        self.seq += 1
        begun = self.seq
        hot = store_mode_current() in self.HOT_MODES
        if hot and self._cut(name):
            self.saw_error[name] = True
            if name == "p1":
                self._window(phones=[phone])  # p1 reads DynamoDB: p0's unflushed turns of it may be dropped
        self.failed_before[name].append(self._state(name)[1])
        try:
            step()
        finally:
            self.failed_before[name].pop()
            pending = self._state(name)[0]
            if hot and self.saw_error[name] and not self._cut(name) and not pending:
                self.saw_error[name] = False
                self._close(
                    f"recovery of {name}",
                    lambda writer, seq, registered: writer == name or (registered and seq < begun),
                )

    def turn(self, phone: str, via: Worker | None = None) -> None:
        self._session_step(self.name_of(via), lambda: History.turn(self, phone, via), phone)

    def end(self, phone: str, how: str, via: Worker | None = None) -> None:
        self._session_step(self.name_of(via), lambda: History.end(self, phone, how, via), phone)

    def flush(self, via: Worker | None = None) -> None:
        self.seq += 1
        begun = self.seq
        if via is not None:
            answer = via.call(command="flush")
            self.counts.trace.append(f"flush by {via.name} {answer}")
            if answer["outcome"] != "ack":
                self.counts.refused += 1
            applied = bool(answer.get("bypass_read"))
        else:
            try:
                result = sessions_flush(mode=store_mode_current())
            except RedisUnavailable:
                self.counts.refused += 1
                return
            self.counts.trace.append(f"flush {result}")
            applied = result.bypass_read
        if applied:  # the run read and applied the registry: the forks acknowledged before it began
            self._close("flush", lambda writer, seq, registered: registered and seq < begun)

    def _close(self, why: str, closes: Callable[[str, int, bool], bool]) -> None:
        for phone, (writer, seq, registered) in list(self.forked.items()):
            if not closes(writer, seq, registered):
                continue
            if self.pending[phone]:
                self.counts.note(store_mode_current(), "partial", self.pending[phone])
            self.counts.trace.append(f"window of {phone[-1]} closed ({why}): {self.pending[phone]} on the stale copy")
            del self.forked[phone]
            self.hot.pop(phone, None)
            self.pending.pop(phone, None)

    def after_ack(self, phone: str, via: Worker | None) -> None:
        name = self.name_of(via)
        if store_mode_current() in self.HOT_MODES and self._cut(name) and phone not in self.forked:
            registered = not self.failed_before[name] or self._state(name)[1] == self.failed_before[name][-1]
            self.forked[phone] = (name, self.seq, registered)
            self.hot[phone] = []
            self.counts.faults["fork"] += 1
            if not registered:
                self.counts.faults["fork_unregistered"] += 1
            self.counts.trace.append(f"fork {phone[-1]}: {name} wrote it cut off (registered: {registered})")

    def stale_read(self, phone: str, ids: list[int] | None, by: str) -> bool:
        if phone not in self.forked:
            return False
        writer = self.forked[phone][0]
        if by == writer or self.saw_error[by] or self._cut(by):
            return False  # the writer knows; a process that saw Redis fail recovers before it reads
        since = self.cut_since[writer].get(phone, len(self.model.states[phone]) - 1)
        states = [*self.model.states[phone][since:], *self.hot[phone]]
        return any(ids == state if isinstance(state, list) else ids is None for state in states)

    def on_stale_ack(self, phone: str, ids: list[int] | None) -> None:
        if phone not in self.forked:  # the window closed while the write ran: dropped with the copy
            self.counts.note(store_mode_current(), "partial")
            return
        self.hot[phone].append(ids)
        self.pending[phone] += 1

    def _heal_worker(self) -> None:
        """p1 reaches Redis again: its first Redis use (here, a read) recovers, in a hot-tier mode."""
        self.p1_cut = False
        self._session_step("p1", self._worker_read, self.phones[0])

    def _worker_read(self) -> None:
        answer = self.worker.call(command="partition", on=False, phone=self.phones[0])
        self.counts.trace.append(f"p1 reaches Redis again: {answer}")

    def toggle_partition(self) -> None:
        was_partitioned = self.partitioned
        if self.rng.random() < 0.5:
            super().toggle_partition()  # the whole of Redis, from both processes
        else:
            self.cut_off = not self.cut_off
            self.counts.faults["partial_partition" if self.cut_off else "partial_partition_healed"] += 1
            self.counts.trace.append("partial partition: Redis cut off from p1" if self.cut_off else "p1 healed")
        if self.partitioned and not was_partitioned:
            self.cut_since["p0"] = {phone: len(self.model.states[phone]) - 1 for phone in self.phones}
        p1_cut = self.partitioned or self.cut_off
        if p1_cut and not self.p1_cut:
            self.cut_since["p1"] = {phone: len(self.model.states[phone]) - 1 for phone in self.phones}
            self.worker.call(command="partition", on=True)
            self.p1_cut = True
        elif self.p1_cut and not p1_cut:
            self._heal_worker()

    def kill_redis(self) -> None:
        killed = not self.partitioned
        super().kill_redis()
        if killed:
            self.worker.call(command="reset_redis")
            self._close("Redis killed", lambda writer, seq, registered: True)

    def toggle_dynamodb(self) -> None:
        super().toggle_dynamodb()
        self.worker.call(command="dynamodb", fault=self.dynamodb_fault)

    def change_mode(self) -> None:
        before = store_mode_current()
        super().change_mode()
        after = store_mode_current()
        if after != before:
            self.worker.call(command="mode", mode=after)

    def run(self, steps: int) -> Counts:
        try:
            return super().run(steps)
        finally:
            self.worker.close()

    def final_check(self) -> None:
        self.worker.call(command="dynamodb", fault=None)
        if self.p1_cut:
            self.cut_off = False
            self._heal_worker()
        # Every fault is healed and both processes reach Redis: what is still open closes now, so the final
        # reads (p0's first one recovers it) and the final flushes allow no stale copy.
        self._close("end of the schedule", lambda writer, seq, registered: True)
        super().final_check()
