"""The CDC worker: one per plan under a lease; peek changes, write them to DynamoDB, then advance the slot.

One loop step:

1. renew the lease (a worker that lost it stops here, before writing anything);
2. note the source's flushed WAL end ``X`` and peek the slot's transactions committed before it
   (at most ``LIZZY_CDC_BATCH_CHANGES`` messages, whole transactions);
3. turn them into DynamoDB operations with the plan's mapping and write them, fenced (the lease must
   still have a margin before each table's BatchWriteItem);
4. put the batch's bad changes (rows the mapping or DynamoDB refuses, key collisions: apply.py) in the
   quarantine, and stop past the plan's ``max_bad_rows`` (quarantine.py);
5. only then advance the slot: to ``X`` when the peek returned everything before it, else to the end of
   the last transaction written; and record the position, the lag and the counts (fenced by the token).

Killed between 3 and 5, the next worker peeks the same transactions again and writes the same final
states (puts are full overwrites, deletes of absent items are no-ops) and quarantines the same bad changes
once: nothing is lost, nothing is applied out of order per key. The slot itself is a second fence:
PostgreSQL lets one session at a time decode from it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from lizzy.errors import ApplicationError, PreconditionFailed
from migration_app.cdc import slots
from migration_app.cdc.apply import ChangeApplier, operations_write
from migration_app.cdc.pgoutput import RelationMessage, lsn_to_int, lsn_to_text, transactions_parse
from migration_app.cdc.quarantine import changes_quarantine
from migration_app.cdc.streams import cdc_stream_active
from migration_app.models import CdcStream, MigrationPlan, MigrationRun, Phase, RunKind, RunStatus
from migration_app.services.plans import plan_context

logger = logging.getLogger(__name__)

ERR_BUSY = "Plan {plan}: another CDC worker ({owner}) holds the lease until {until:%H:%M:%S} UTC."
ERR_LEASE_LOST = "Plan {plan}: the CDC lease was taken over (token {token}); this worker stopped before writing."
ERR_NO_STREAM = (
    "Plan {plan} has no active CDC stream (no slot): it is created when the plan enters backfill. "
    "After a rollback, roll back to setup and advance again, then run the backfill."
)
ERR_NOT_CDC = "Plan {plan} does not use change data capture (its cdc option is off)."
ERR_SLOT_GONE = "Plan {plan}: the replication slot {slot} no longer exists on the source; change capture stopped."
WAIT_NO_BACKFILL = "waiting for a backfill that started after the slot was created to succeed"
WAIT_RUN = "waiting for run #{run} ({status}) to finish"
WAIT_PHASE = "the plan is in {phase}; changes are applied in backfill (after the backfill), parallel and validate"
APPLYING_PHASES = (Phase.BACKFILL, Phase.PARALLEL, Phase.VALIDATE)
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)


class CdcBusy(PreconditionFailed):
    code = "cdc_busy"


class LeaseLost(ApplicationError):
    code = "cdc_lease_lost"


@dataclass
class Lease:
    stream_id: int
    plan: str
    owner: str
    token: int
    seconds: float
    deadline: float = 0.0  # time.monotonic() when the lease ends, as far as this worker knows

    def renew(self) -> None:
        started = time.monotonic()
        renewed = CdcStream.objects.filter(pk=self.stream_id, lease_token=self.token, lease_owner=self.owner).update(
            lease_expires_at=timezone.now() + timezone.timedelta(seconds=self.seconds)
        )
        if not renewed:
            raise LeaseLost(ERR_LEASE_LOST.format(plan=self.plan, token=self.token))
        self.deadline = started + self.seconds

    def fence(self) -> None:
        """Before a write: the lease must have a third of its time left, or it is renewed first."""
        if self.deadline - time.monotonic() < self.seconds / 3:
            self.renew()

    def release(self) -> None:
        CdcStream.objects.filter(pk=self.stream_id, lease_token=self.token, lease_owner=self.owner).update(
            lease_expires_at=None, lease_owner=""
        )


def lease_acquire(*, stream: CdcStream, owner: str, seconds: float) -> Lease:
    """Take the stream's lease when it is free, expired or already ours; the token goes up by one."""
    now = timezone.now()
    taken = (
        CdcStream.objects.filter(pk=stream.pk)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner))
        .update(
            lease_owner=owner,
            lease_token=F("lease_token") + 1,
            lease_expires_at=now + timezone.timedelta(seconds=seconds),
        )
    )
    stream.refresh_from_db()
    if not taken:
        raise CdcBusy(ERR_BUSY.format(plan=stream.plan.name, owner=stream.lease_owner, until=stream.lease_expires_at))
    lease = Lease(stream.pk, stream.plan.name, owner, stream.lease_token, seconds)
    lease.deadline = time.monotonic() + seconds
    return lease


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class CdcOutcome:
    steps: int = 0
    transactions: int = 0
    changes: int = 0
    puts: int = 0
    deletes: int = 0
    quarantined: int = 0
    waiting: str = ""
    stopped: str = ""
    confirmed_lsn: str = ""
    lag_bytes: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "log"}


def cdc_wait_reason(*, plan: MigrationPlan, stream: CdcStream) -> str:
    """Why the worker may not apply now ('' when it may)."""
    plan.refresh_from_db(fields=["phase"])
    if plan.phase not in APPLYING_PHASES:
        return WAIT_PHASE.format(phase=plan.phase)
    busy = MigrationRun.objects.filter(plan=plan, status__in=UNFINISHED).first()
    if busy is not None:
        return WAIT_RUN.format(run=busy.pk, status=busy.status)
    backfilled = MigrationRun.objects.filter(
        plan=plan, kind=RunKind.BACKFILL, status=RunStatus.SUCCEEDED, started_at__gt=stream.created_at
    ).exists()
    return "" if backfilled else WAIT_NO_BACKFILL


def cdc_run(
    *,
    plan: MigrationPlan,
    until_idle: bool = False,
    max_seconds: float | None = None,
    owner: str | None = None,
    poll_seconds: float | None = None,
    on_step: Any = None,
) -> CdcOutcome:
    """Apply the plan's changes until stopped (``until_idle``: until caught up, or while it must wait).

    Raises CdcBusy when another worker holds the lease, LeaseLost when it is taken over mid-way.
    """
    if not plan.cdc:
        raise PreconditionFailed(ERR_NOT_CDC.format(plan=plan.name))
    stream = cdc_stream_active(plan=plan)
    if stream is None:
        raise PreconditionFailed(ERR_NO_STREAM.format(plan=plan.name))
    poll = settings.LIZZY_CDC_POLL_SECONDS if poll_seconds is None else poll_seconds
    lease = lease_acquire(stream=stream, owner=owner or worker_name(), seconds=settings.LIZZY_CDC_LEASE_SECONDS)
    outcome = CdcOutcome()
    started = time.monotonic()
    connection = slots.source_connect(plan.source_url)
    try:
        with plan_context(plan=plan) as context:
            types: dict[int, list[str]] = {}

            def type_names(relation: RelationMessage) -> list[str]:
                if relation.oid not in types:
                    pairs = [(column.type_oid, column.type_modifier) for column in relation.columns]
                    types[relation.oid] = slots.type_names(connection, pairs)
                return types[relation.oid]

            applier = ChangeApplier(context=context, type_names=type_names)
            # The slot's own position wins over the row's: a worker killed between advancing the slot and
            # recording it left the row behind.
            state = slots.slot_state(connection, stream.slot_name)
            if state is None:
                raise ApplicationError(ERR_SLOT_GONE.format(plan=plan.name, slot=stream.slot_name))
            recorded = lsn_to_int(stream.confirmed_lsn) if stream.confirmed_lsn else 0
            stream.confirmed_lsn = lsn_to_text(max(recorded, state["confirmed_lsn"]))
            relations: dict[int, RelationMessage] = {}
            while True:
                lease.renew()
                reason = cdc_wait_reason(plan=plan, stream=stream)
                if reason == "" and stream.applying_since is None:
                    # Mark first, check again: a run recorded meanwhile sees the mark (cdc_guard_run).
                    CdcStream.objects.filter(pk=stream.pk, lease_token=lease.token).update(
                        applying_since=timezone.now()
                    )
                    stream.refresh_from_db()
                    reason = cdc_wait_reason(plan=plan, stream=stream)
                if reason:
                    outcome.waiting = reason
                    _heartbeat(stream, lease, connection, outcome)
                    if until_idle or _out_of_time(started, max_seconds):
                        break
                    time.sleep(poll)
                    continue
                outcome.waiting = ""
                applied = cdc_step(
                    stream=stream, lease=lease, connection=connection, applier=applier, relations=relations
                )
                outcome.steps += 1
                outcome.transactions += applied["transactions"]
                outcome.changes += applied["changes"]
                outcome.puts += applied["puts"]
                outcome.deletes += applied["deletes"]
                outcome.quarantined += applied["quarantined"]
                outcome.confirmed_lsn, outcome.lag_bytes = applied["confirmed_lsn"], applied["lag_bytes"]
                if on_step is not None:
                    on_step(applied)
                if _out_of_time(started, max_seconds):
                    break
                if applied["complete"] and not applied["transactions"]:
                    if until_idle:
                        break
                    time.sleep(poll)
    except ApplicationError as exc:
        CdcStream.objects.filter(pk=stream.pk).update(last_error=exc.message[:4000])
        outcome.stopped = exc.message
        raise
    finally:
        slots.close_quietly(connection)
        lease.release()
    return outcome


def _out_of_time(started: float, max_seconds: float | None) -> bool:
    return max_seconds is not None and time.monotonic() - started >= max_seconds


def _heartbeat(stream: CdcStream, lease: Lease, connection, outcome: CdcOutcome) -> None:
    """A waiting worker still reads the slot's state: the lag and the slot's health stay visible."""
    state = slots.slot_state(connection, stream.slot_name)
    if state is None:
        raise ApplicationError(ERR_SLOT_GONE.format(plan=stream.plan.name, slot=stream.slot_name))
    CdcStream.objects.filter(pk=stream.pk, lease_token=lease.token).update(
        lag_bytes=state["lag_bytes"], last_read_at=timezone.now()
    )
    outcome.lag_bytes = state["lag_bytes"]


def cdc_step(
    *, stream: CdcStream, lease: Lease, connection, applier: ChangeApplier, relations: dict[int, RelationMessage]
) -> dict[str, Any]:
    """One peek → write → advance cycle (see the module docstring)."""
    limit = settings.LIZZY_CDC_BATCH_CHANGES
    seen_at = timezone.now()
    upto = slots.flush_lsn(connection)
    messages = slots.slot_peek(
        connection, slot=stream.slot_name, publication=stream.publication_name, upto_lsn=upto, upto_changes=limit
    )
    complete = len(messages) < limit
    decoded = transactions_parse(messages, relations)
    transactions = [transaction for transaction in decoded if transaction.changes]  # empty ones carry nothing
    planned = applier.operations(transactions, relations)
    puts = deletes = quarantined = 0
    bad = planned.bad
    if planned.operations:
        written = operations_write(planned.operations, fence=lease.fence)
        puts, deletes, bad = written.puts, written.deletes, bad + written.bad
    if bad:
        lease.fence()
        quarantined = changes_quarantine(stream=stream, plan=stream.plan, bad=bad)
    confirmed = lsn_to_int(stream.confirmed_lsn) if stream.confirmed_lsn else 0
    target = upto if complete else (decoded[-1].end_lsn if decoded else confirmed)
    lease.fence()  # the slot moves only while this worker still holds the lease
    if target > confirmed:
        slots.slot_advance(connection, slot=stream.slot_name, lsn=target)
    state = slots.slot_state(connection, stream.slot_name)
    if state is None:
        raise ApplicationError(ERR_SLOT_GONE.format(plan=stream.plan.name, slot=stream.slot_name))
    confirmed = max(confirmed, target)
    fields: dict[str, Any] = {
        "confirmed_lsn": lsn_to_text(confirmed),
        "lag_bytes": state["lag_bytes"],
        "last_read_at": timezone.now(),
        "changes_applied": F("changes_applied") + planned.changes,
        "transactions_applied": F("transactions_applied") + len(transactions),
        "last_error": "",
    }
    if complete:
        fields["caught_up_at"] = seen_at
    if transactions:
        fields["last_commit_at"] = transactions[-1].commit_time
    if not CdcStream.objects.filter(pk=stream.pk, lease_token=lease.token).update(**fields):
        raise LeaseLost(ERR_LEASE_LOST.format(plan=stream.plan.name, token=lease.token))
    stream.confirmed_lsn = fields["confirmed_lsn"]
    return {
        "transactions": len(transactions),
        "changes": planned.changes,
        "puts": puts,
        "deletes": deletes,
        "quarantined": quarantined,
        "complete": complete,
        "confirmed_lsn": stream.confirmed_lsn,
        "lag_bytes": state["lag_bytes"],
        "operations": planned.operations,
        "commit_times": [transaction.commit_time for transaction in transactions],
    }
