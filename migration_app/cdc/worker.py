"""The CDC worker: one per plan under a lease; read changes, write them to DynamoDB, then confirm the position.

The loop is one for every source; what reads the source is the stream's capture (capture.py:
``slots.PgCapture`` for PostgreSQL, ``binlog.BinlogCapture`` for MySQL/MariaDB). One loop step:

1. renew the lease (a worker that lost it stops here, before writing anything), and stop if a rollback or
   cleanup ended the stream;
2. note the source's end ``X`` (PostgreSQL: the flushed WAL end; MySQL: ``SHOW MASTER STATUS``) and read
   the transactions committed after the confirmed position (at most ``LIZZY_CDC_BATCH_CHANGES`` changes,
   whole transactions);
3. turn them into DynamoDB operations with the plan's mapping and write them, fenced (the lease must
   still have a margin before each table's BatchWriteItem);
4. put the batch's bad changes (rows the mapping or DynamoDB refuses, key collisions: apply.py) in the
   quarantine, and stop past the plan's ``max_bad_rows`` (quarantine.py);
5. only then confirm: advance the slot (PostgreSQL; the binlog keeps no position) to ``X`` when the read
   returned everything, else to the end of the last transaction written; and record the position, the lag
   and the counts in the stream's row (fenced by the token: for MySQL the row is the only record).

Killed between 3 and 5, the next worker reads the same transactions again and writes the same final
states (puts are full overwrites, deletes of absent items are no-ops) and quarantines the same bad changes
once: nothing is lost, nothing is applied out of order per key. The source adds a second fence: PostgreSQL
lets one session at a time decode from a slot; MySQL drops a replica connection when another registers
with the same server_id.
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
from migration_app.cdc.apply import ChangeApplier, operations_write
from migration_app.cdc.capture import capture_open
from migration_app.cdc.quarantine import changes_quarantine
from migration_app.cdc.streams import cdc_stream_active
from migration_app.models import CdcStatus, CdcStream, MigrationPlan, MigrationRun, Phase, RunKind, RunStatus
from migration_app.services.plans import plan_context

logger = logging.getLogger(__name__)

ERR_BUSY = "Plan {plan}: another CDC worker ({owner}) holds the lease until {until:%H:%M:%S} UTC."
ERR_LEASE_LOST = "Plan {plan}: the CDC lease was taken over (token {token}); this worker stopped before writing."
ERR_NO_STREAM = (
    "Plan {plan} has no active CDC stream (no slot): it is created when the plan enters backfill. "
    "After a rollback, roll back to setup and advance again, then run the backfill."
)
ERR_NOT_CDC = "Plan {plan} does not use change data capture (its cdc option is off)."
ERR_STREAM_ENDED = "Plan {plan}: its CDC stream {slot} was ended (rolled back or cleaned up); the worker stopped."
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
    capture = None
    try:
        capture = capture_open(stream=stream)
        with plan_context(plan=plan) as context:
            applier = capture.applier(context)
            # The slot's own position wins over the row's: a worker killed between advancing the slot and
            # recording it left the row behind (the binlog keeps no position: there the row is the record).
            state = _state(stream, capture)
            recorded = capture.position_int(stream.confirmed_lsn)
            stream.confirmed_lsn = capture.position_text(max(recorded, state["confirmed_lsn"]))
            while True:
                lease.renew()
                _still_active(stream)
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
                    _heartbeat(stream, lease, capture, outcome)
                    if until_idle or _out_of_time(started, max_seconds):
                        break
                    time.sleep(poll)
                    continue
                outcome.waiting = ""
                applied = cdc_step(stream=stream, lease=lease, capture=capture, applier=applier)
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
        if capture is not None:
            capture.close()
        lease.release()
    return outcome


def _still_active(stream: CdcStream) -> None:
    """A rollback or cleanup ended the stream (status dropped): the worker stops before reading more."""
    if not CdcStream.objects.filter(pk=stream.pk, status=CdcStatus.ACTIVE).exists():
        raise ApplicationError(ERR_STREAM_ENDED.format(plan=stream.plan.name, slot=stream.slot_name))


def _state(stream: CdcStream, capture, *, confirmed: str | None = None) -> dict[str, Any]:
    """The capture's state; its position gone from the source (slot dropped, binlog purged) stops the worker
    and is recorded on the stream (``source_lost_at``: an alarm)."""
    state = capture.state(confirmed=confirmed)
    if state is None:
        CdcStream.objects.filter(pk=stream.pk, source_lost_at__isnull=True).update(source_lost_at=timezone.now())
        raise ApplicationError(capture.gone_message(plan=stream.plan.name))
    return state


def _out_of_time(started: float, max_seconds: float | None) -> bool:
    return max_seconds is not None and time.monotonic() - started >= max_seconds


def _heartbeat(stream: CdcStream, lease: Lease, capture, outcome: CdcOutcome) -> None:
    """A waiting worker still reads the source's state: the lag and the position's health stay visible."""
    state = _state(stream, capture, confirmed=stream.confirmed_lsn)
    CdcStream.objects.filter(pk=stream.pk, lease_token=lease.token).update(
        lag_bytes=state["lag_bytes"], last_read_at=timezone.now()
    )
    outcome.lag_bytes = state["lag_bytes"]


def cdc_step(*, stream: CdcStream, lease: Lease, capture, applier: ChangeApplier) -> dict[str, Any]:
    """One read → write → confirm cycle (see the module docstring)."""
    limit = settings.LIZZY_CDC_BATCH_CHANGES
    seen_at = timezone.now()
    upto = capture.end_position()
    confirmed = capture.position_int(stream.confirmed_lsn)
    batch = capture.read(confirmed=confirmed, upto=upto, limit=limit)
    transactions = batch.transactions
    planned = applier.operations(transactions, capture.relations)
    puts = deletes = quarantined = 0
    bad = planned.bad
    if planned.operations:
        written = operations_write(planned.operations, fence=lease.fence)
        puts, deletes, bad = written.puts, written.deletes, bad + written.bad
    if bad:
        lease.fence()
        quarantined = changes_quarantine(stream=stream, plan=stream.plan, bad=bad, position_text=capture.position_text)
    target = batch.end or confirmed
    lease.fence()  # the position moves only while this worker still holds the lease
    if target > confirmed:
        capture.advance(position=target)
    confirmed = max(confirmed, target)
    state = _state(stream, capture, confirmed=capture.position_text(confirmed))
    fields: dict[str, Any] = {
        "confirmed_lsn": capture.position_text(confirmed),
        "lag_bytes": state["lag_bytes"],
        "last_read_at": timezone.now(),
        "changes_applied": F("changes_applied") + planned.changes,
        "transactions_applied": F("transactions_applied") + len(transactions),
        "last_error": "",
    }
    if batch.complete:
        fields["caught_up_at"] = seen_at
    if transactions:
        fields["last_commit_at"] = transactions[-1].commit_time
    if not CdcStream.objects.filter(pk=stream.pk, lease_token=lease.token, status=CdcStatus.ACTIVE).update(**fields):
        _still_active(stream)
        raise LeaseLost(ERR_LEASE_LOST.format(plan=stream.plan.name, token=lease.token))
    stream.confirmed_lsn = fields["confirmed_lsn"]
    return {
        "transactions": len(transactions),
        "changes": planned.changes,
        "puts": puts,
        "deletes": deletes,
        "quarantined": quarantined,
        "complete": batch.complete,
        "confirmed_lsn": stream.confirmed_lsn,
        "lag_bytes": state["lag_bytes"],
        "operations": planned.operations,
        "commit_times": [transaction.commit_time for transaction in transactions],
    }
