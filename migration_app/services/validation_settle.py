"""Validation's settle step: while the CDC worker runs, tell changes still in flight from differences.

The digest comparison reads the source and the target at different moments, so on a plan whose source
still changes a key can differ only because its latest change has not reached DynamoDB yet. Each key the
comparison named (missing, different, extra; at most ``LIZZY_VALIDATION_SETTLE_MAX_KEYS``) is followed in
rounds (at most ``LIZZY_VALIDATION_SETTLE_ROUNDS``):

1. read the keys' source rows in one snapshot ``S`` (``REPEATABLE READ``), through the plan's relation
   (its casts and DMS filters) and transform, with each row's version (``xmin``: any committed change
   writes a new one);
2. note the source's flushed WAL end ``L`` after ``S`` (``flush_lsn``): every transaction visible in ``S``
   committed before ``L``;
3. wait (at most ``LIZZY_VALIDATION_SETTLE_SECONDS``) until the slot's confirmed position reaches ``L``. The
   worker moves it only after DynamoDB accepted the writes, so from then on every change visible in ``S``
   is in DynamoDB;
4. read the items (consistent BatchGetItem). An item equal to what ``S`` expects is **in flight**: it
   differed only because its change was on the way (both absent counts: a delete that arrived).

A key that still differs is read again in the next round's snapshot ``S'`` (taken after the item read). Same
version in ``S`` and ``S'``: nothing changed the row between the two reads, yet after the worker had passed
everything in ``S`` the item disagreed: a **difference**, counted as the last item read found it. A new version:
the row is still changing, and the key goes round again. After the last round, a key that changed every
time is **unsettled** ("still changing"), and so is every key left when the worker did not reach ``L`` in
time ("worker not advancing") or the source could not say where the slot is: the step then stops at once.
Unsettled keys make the report unclean, never clean by accident.

A MySQL/MariaDB source (a binlog stream) goes through the same rounds through its capture
(``cdc/capture.py``): ``L`` is ``SHOW MASTER STATUS`` after ``S`` and the confirmed position is the stream's
row. It has no row version: ``_binlog_versions`` gives each row one from the binlog read from before the
previous snapshot to after this one (a row no change touched keeps its version).

A key the target holds and the source did not select (an *extra*) has no source key to read by: the rows
that map to it are found by one pass over its table's entities in the round's snapshot (only while the key
is open). So is a key whose row is gone while its item is not (another row may have taken the item key),
and one whose row now maps to another item key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pymysql
from django.conf import settings

from lizzy.dynamodb import dynamodb_batch_get
from lizzy.errors import ApplicationError
from lizzy.scrub import secrets_scrub
from migration_app.cdc.binlog import BinlogCapture
from migration_app.cdc.capture import capture_kind, capture_open
from migration_app.models import CdcStream
from migration_app.services.canonical import item_from_json, key_text
from migration_app.services.mapping import RowError
from migration_app.services.plans import PlanContext
from migration_app.sources.base import KEY

WAIT_POLL_SECONDS = 0.05
REASON_STALLED = (
    "the CDC worker did not apply the source's changes up to {lsn} within LIZZY_VALIDATION_SETTLE_SECONDS "
    "({seconds:g} s; slot {slot} confirmed {confirmed}): is migration_cdc running?"
)
REASON_CHANGING = "the source row changed in each of {rounds} settle round(s) (LIZZY_VALIDATION_SETTLE_ROUNDS)"
REASON_UNVERSIONED = "the source reports no row version, so a stable row cannot be told from a changing one"
REASON_SLOT_GONE = "the replication slot {slot} no longer exists on the source"
REASON_SOURCE_ERROR = "the source could not say how far the CDC worker got (slot {slot}): {problem}"
REASON_COUNTS_MOVED = (
    "counted while the CDC worker applied changes to the target (or keys of this table were in flight): "
    "source and target were counted at different moments"
)
UNKNOWN = object()  # the expected digest when this round could not say what the item must be


@dataclass
class Pending:
    """A key the digest comparison named, followed through the rounds."""

    table: str
    key: str
    kind: str  # missing | different | extra: what the comparison counted it as
    entity: str | None = None  # the entity whose row maps to it (None: not known yet, an extra)
    source_key: list[Any] | None = None
    now: str = ""  # what the last item read found it to be (missing | different | extra), '' before any
    expected: dict[str, Any] | None = None  # the item the last snapshot's row must be (field diffs of a sample)

    @property
    def final(self) -> str:
        return self.now or self.kind

    @property
    def item_key(self) -> dict[str, Any]:
        return item_from_json(json.loads(self.key))


@dataclass
class Pendings:
    """The keys to settle, at most ``cap``; the rest are counted (they stay what the comparison named)."""

    cap: int
    items: list[Pending] = field(default_factory=list)
    skipped: int = 0

    def add(self, pending: Pending) -> None:
        if len(self.items) < self.cap:
            self.items.append(pending)
        else:
            self.skipped += 1


@dataclass
class SettleOutcome:
    in_flight: list[Pending] = field(default_factory=list)
    differences: list[Pending] = field(default_factory=list)
    unsettled: list[tuple[Pending, str]] = field(default_factory=list)
    rounds: int = 0
    positions: list[str] = field(default_factory=list)  # each round's L, as text
    stalled: str = ""


@dataclass
class _Seen:
    # ("row", version, digest) | ("absent",) | ("unmappable", version) | ("moved", version) | ("collision",)
    state: tuple
    expected: Any  # the digest the item must have (None: absent), or UNKNOWN

    @property
    def stable(self) -> bool:
        """Whether an equal state in the next snapshot proves the row did not change in between."""
        kind = self.state[0]
        return kind in ("absent", "collision") or (kind in ("row", "unmappable") and self.state[1] is not None)


def validation_settle(
    *,
    context: PlanContext,
    stream: CdcStream,
    pendings: list[Pending],
    digest: Callable[[dict[str, Any], str], bytes],
    target_view: Callable[[str, list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]],
    expired: Callable[[str, dict[str, Any]], bool],
) -> SettleOutcome:
    """Follow ``pendings`` until each is in flight (settled), a difference, or unsettled (see the module).

    ``digest(item, key)`` is the comparison's item digest, ``target_view(table, items)`` the (key, item) pairs
    of the items validation looks at (owned entity types, not expired), ``expired(table, item)`` whether an
    expected item's ttl has passed.
    """
    outcome = SettleOutcome()
    rounds = max(int(settings.LIZZY_VALIDATION_SETTLE_ROUNDS), 1)
    seconds = float(settings.LIZZY_VALIDATION_SETTLE_SECONDS)
    last: dict[int, _Seen] = {}  # the state of a key's previous snapshot, when the item read after it differed
    open_ = list(pendings)
    capture = None
    by_binlog = capture_kind(context.plan.source_url) == BinlogCapture.kind
    starts: list[int | None] = []  # binlog: the source's end before each round's snapshot
    tokens: dict[int, str] = {}  # binlog: each key's row version, as the binlog tells it
    try:
        for number in range(rounds + 1):
            if by_binlog:
                capture = capture or capture_open(stream=stream, reader="validation")
                starts.append(_binlog_end(capture))
            with context.source.snapshot():
                seen = _observe(context, open_, digest, expired)
            if by_binlog:
                _binlog_versions(context, capture, open_, seen, tokens, starts, number)
            still = []
            for pending in open_:
                before, now = last.get(id(pending)), seen[id(pending)]
                if before is not None and before.stable and before.state == now.state:
                    outcome.differences.append(pending)
                else:
                    still.append(pending)
            open_ = still
            if not open_ or number == rounds:
                break
            outcome.rounds += 1
            try:
                capture = capture or capture_open(stream=stream)
                position = capture.end_position()
                outcome.positions.append(capture.position_text(position))
                reached, confirmed = _wait_for(capture, position, seconds)
                if confirmed is None:
                    outcome.stalled = REASON_SLOT_GONE.format(slot=stream.slot_name)
                elif not reached:
                    outcome.stalled = REASON_STALLED.format(
                        lsn=capture.position_text(position), seconds=seconds, slot=stream.slot_name, confirmed=confirmed
                    )
            # a role without the worker's rights, a source gone: said, not raised
            except (psycopg.Error, pymysql.MySQLError) as exc:
                text = str(exc).strip()
                problem = secrets_scrub(text.splitlines()[0] if text else type(exc).__name__)
                outcome.stalled = REASON_SOURCE_ERROR.format(slot=stream.slot_name, problem=problem)
            if outcome.stalled:
                outcome.unsettled += [(pending, outcome.stalled) for pending in open_]
                return outcome
            actual = _read_items(open_, target_view, digest)
            still = []
            for pending in open_:
                now = seen[id(pending)]
                got = actual.get((pending.table, pending.key))
                if now.expected is not UNKNOWN and got == now.expected:
                    outcome.in_flight.append(pending)
                    continue
                if now.expected is not UNKNOWN:
                    pending.now = "missing" if got is None else "extra" if now.expected is None else "different"
                if now.state == ("absent",) and got is not None:
                    # its row is gone, its item is not: another row may have taken the item key (a template
                    # without the primary key), so the next snapshot looks for every row that maps to it
                    pending.entity, pending.source_key = None, None
                last[id(pending)] = now
                still.append(pending)
            open_ = still
        for pending in open_:
            state = last[id(pending)].state if id(pending) in last else ()
            unversioned = state[:1] == ("row",) and state[1] is None
            reason = REASON_UNVERSIONED if unversioned else REASON_CHANGING.format(rounds=outcome.rounds)
            outcome.unsettled.append((pending, reason))
    finally:
        if capture is not None:
            capture.close()
    return outcome


def _binlog_end(capture) -> int | None:
    try:
        return capture.end_position()
    except (pymysql.MySQLError, ApplicationError):
        return None


def _binlog_versions(context, capture, pendings, seen, tokens, starts, number) -> None:
    """MySQL/MariaDB rows have no version: give each key's row one from the binlog. It stays what it was in
    the previous round when no change committed from before that round's snapshot (``starts[number - 1]``)
    up to after this one's touched the row; otherwise (or when the binlog cannot say) it is new, so the key
    goes round again. The range starts before the previous snapshot, so every change the two snapshots
    could see apart is in it."""
    changed = None
    end = _binlog_end(capture)
    if number > 0 and starts[number - 1] is not None and end is not None:
        changed = capture.changed_identities(context, start=starts[number - 1], end=end)
    for pending in pendings:
        state = seen[id(pending)].state
        if state[0] not in ("row", "unmappable", "moved") or state[1] is not None or pending.entity is None:
            continue
        identity = json.dumps([pending.entity, pending.source_key], default=str)
        if changed is None or identity in changed or id(pending) not in tokens:
            tokens[id(pending)] = f"binlog-{number}"
        seen[id(pending)].state = (state[0], tokens[id(pending)], *state[2:])


def _wait_for(capture, position: int, seconds: float) -> tuple[bool, str | None]:
    """Poll the confirmed position (the slot's; a binlog stream's row) until it reaches ``position`` or
    ``seconds`` pass (never longer)."""
    deadline = time.monotonic() + seconds
    while True:
        state = capture.state()
        if state is None:
            return False, None
        if state["confirmed_lsn"] >= position:
            return True, capture.position_text(state["confirmed_lsn"])
        if time.monotonic() >= deadline:
            return False, capture.position_text(state["confirmed_lsn"])
        time.sleep(min(WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0)))


def _observe(context: PlanContext, pendings: list[Pending], digest, expired) -> dict[int, _Seen]:
    """Each open key's source state in the current snapshot (one query per entity, one pass per table of
    extras not traced to a row yet)."""
    seen: dict[int, _Seen] = {}
    by_entity: dict[str, list[Pending]] = {}
    unknown: dict[str, list[Pending]] = {}
    for pending in pendings:
        if pending.entity is None:
            unknown.setdefault(pending.table, []).append(pending)
        else:
            by_entity.setdefault(pending.entity, []).append(pending)
    for name, group in by_entity.items():
        entity = context.entity(name)
        relation = context.source.relation(entity)
        keys = [pending.source_key for pending in group]
        found_rows = context.source.rows_by_keys(relation, keys=keys)
        rows = {json.dumps(row[KEY]): (row, version) for row, version in found_rows}
        for pending in group:
            found = rows.get(json.dumps(pending.source_key))
            if found is None:
                seen[id(pending)] = _Seen(("absent",), None)
                continue
            row, version = found
            try:
                expected = entity.transform(row)
            except RowError:
                seen[id(pending)] = _Seen(("unmappable", version), UNKNOWN)
                continue
            if key_text(expected, entity.key_names) != pending.key:
                # the row now maps to another item key: which row (if any) maps to this one is not known any more
                pending.entity, pending.source_key = None, None
                seen[id(pending)] = _Seen(("moved", version), UNKNOWN)
                continue
            if expired(pending.table, expected):
                seen[id(pending)] = _Seen(("row", version, None), None)
                continue
            value = digest(expected, pending.key)
            pending.expected = expected
            seen[id(pending)] = _Seen(("row", version, value.hex()), value)
    for table, group in unknown.items():
        wanted = {pending.key: pending for pending in group}
        matches: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {}
        for entity in context.entities:
            if entity.target_table != table:
                continue
            relation = context.source.relation(entity)
            for rows in context.source.pages(relation, after=None, upper=None, page_size=1000):
                for row in rows:
                    try:
                        expected = entity.transform(row)
                    except RowError:
                        continue
                    key = key_text(expected, entity.key_names)
                    if key in wanted:
                        matches.setdefault(key, []).append((entity.name, row, expected))
        for key, pending in wanted.items():
            found = matches.get(key, [])
            if not found:
                seen[id(pending)] = _Seen(("absent",), None)
            elif len(found) > 1:
                # two source rows for one item key: a collision, not a change in flight
                seen[id(pending)] = _Seen(("collision",), UNKNOWN)
            else:
                name, row, expected = found[0]
                pending.entity, pending.source_key, pending.expected = name, row[KEY], expected
                value = None if expired(table, expected) else digest(expected, key)
                seen[id(pending)] = _Seen(("row", None, value.hex() if value else None), value)
    return seen


def _read_items(pendings: list[Pending], target_view, digest) -> dict[tuple[str, str], bytes]:
    """Digests of the keys' items as DynamoDB holds them now (consistent reads); absent keys are left out."""
    actual: dict[tuple[str, str], bytes] = {}
    tables: dict[str, list[Pending]] = {}
    for pending in pendings:
        tables.setdefault(pending.table, []).append(pending)
    for table, group in tables.items():
        items = dynamodb_batch_get(table=table, keys=[pending.item_key for pending in group], consistent=True)
        for key, item in target_view(table, items):
            actual[(table, key)] = digest(item, key)
    return actual


__all__ = ["REASON_COUNTS_MOVED", "Pending", "Pendings", "SettleOutcome", "validation_settle"]
