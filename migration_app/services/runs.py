"""Runs: a backfill or catch-up cut into small work units, each leased, read → transformed → written with a checkpoint.

A run starts with one *open-ended* unit per entity. The runner that takes an open-ended unit cuts it with
a keyset probe (``source.key_after``: the key ``unit_rows`` rows further, one index walk, never a COUNT
and an OFFSET from the start), cuts the unit after it with a second probe, and creates that unit (cut) and
the next open-ended unit after it, so units appear as fast as workers take them, each about a minute of
work, and more workers on more machines take more units; the runner that takes a unit cut ahead writes at
once, without a probe of its own.

A unit is worked on only under a lease (``unit_lease``): taking it is one conditional UPDATE (not done,
lease free or expired, run not stopped) that adds one to its fencing token, then one read of the unit with
its run and plan, which says whether that UPDATE took it (the runner's name and this take's expiry). Before
every page is sent the runner writes under the condition that the token is still its own (a page's
checkpoint, which renews the lease, or a renewal alone), and every checkpoint is written under the same
condition: a second runner, a redelivered Celery message or a catch-up is refused while the lease holds,
and a runner whose lease expired and was taken over stops before its next page, dropping the chunks it had
not sent yet.

Within a unit, pages are pipelined (``_UnitPipeline``): the next page is read and transformed while the
previous pages' BatchWriteItem calls are in flight (``LIZZY_MIGRATION_WRITE_CONCURRENCY`` at a time, with
at most one page queued behind them, so memory stays bounded), and a page's checkpoint is written, in page
order, only once DynamoDB accepted every chunk of it and of the pages before it. A SIGKILLed worker's
unit is taken over when its lease expires (``LIZZY_MIGRATION_LEASE_SECONDS``) and resumes from its
checkpoint; a page written twice writes the same items (PutRequest is a full overwrite). A Celery unit task
goes on with the run's next free units for ``LIZZY_MIGRATION_CHAIN_SECONDS``, each taken (leased, cut, its
first pages sent through the same writer) while the unit before drains (``_Chain``).

Progress is written per unit (one row per unit per page); the run's totals are the sum of its units,
stored on the run when a unit ends, in one UPDATE that also closes the run when its last unit ended (a unit
boundary is about ten control-database statements: docs/MIGRATIONS.md, "Running on many machines").
Transient errors (throttling past the writer's budget, timeouts, an unreachable endpoint) are retried per
unit with backoff, at most ``LIZZY_MIGRATION_UNIT_RETRIES`` times, counted in the unit's ``retries`` and
``last_error``. Anything else fails the run at once, naming the plan, table, rule, unit and source key; a
failed, paused or cancelled run is resumed from its checkpoints
(``run_reopen``). Dispatching units to Celery is ``services.dispatch``'s job, not this module's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Case, Exists, F, Max, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from lizzy.dynamodb import (
    BATCH_WRITE_MAX_ITEMS,
    BatchWriteIncomplete,
    BatchWriter,
    BatchWriteResult,
    DynamoDBThrottled,
    DynamoDBUnavailable,
    spent_of,
)
from lizzy.errors import ApplicationError, PreconditionFailed
from lizzy.scrub import secrets_scrub
from migration_app.cdc.streams import cdc_guard_run
from migration_app.models import MigrationPlan, MigrationRun, QuarantinedRow, RunKind, RunStatus, Segment
from migration_app.services.mapping import EntityMapping
from migration_app.services.plans import PlanContext, plan_context
from migration_app.services.writer import (
    BadRow,
    KeyLedger,
    PreparedPage,
    page_chunk_written,
    page_load,
    page_prepare,
    page_refused,
    page_rewrite,
)

logger = logging.getLogger(__name__)

ERR_RUN_BUSY = "Plan {plan} already has run #{run} in progress; resume it instead of starting another."
ERR_NOT_PAUSABLE = "Run #{run} is {status}; only a pending or running run can be paused."
ERR_NOT_CANCELLABLE = "Run #{run} is {status}; only a pending, running or paused run can be cancelled."
ERR_RESUME_BAD_ROWS = (
    "Run #{run} quarantined {count} row(s), more than the {limit} it may: resumed as it is, it would end "
    "succeeded past its allowance. Resume it with --max-bad-rows {count} or more (migrate_to_dynamodb --resume "
    "{run} --max-bad-rows N), or raise plan {plan}'s max_bad_rows and resume it from the console; or fix the "
    "rows (admin: Quarantined rows) and start a new run."
)
ERR_NOT_RESUMABLE = "Run #{run} is {status}; only a failed, paused or cancelled run can be resumed."
ERR_NO_RUN = "Plan {plan} has no run to {verb}."
ERR_ROW = "plan {plan}, table {table}, rule {rule}, source key {key}: {reason}"
ERR_TOO_MANY_BAD_ROWS = (
    "{count} row(s) quarantined, more than the {limit} this run allows (--max-bad-rows / the plan's max_bad_rows); "
    "the row that went over (unit {unit}): {row}"
)
ERR_SEGMENT_FAILED = (
    "plan {plan}, table {table}, rule {rule}, unit {unit}, after source key {key} ({written} item(s) written): "
    "{problem}"
)
ERR_UNEXPECTED = "unexpected {type}: {problem}"
ERR_RETRIES_EXHAUSTED = "{problem} (still failing after {retries} retries with backoff)"
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)
STOPPED = (RunStatus.PAUSED, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.SUCCEEDED)
RESUMABLE = (RunStatus.FAILED, RunStatus.PAUSED, RunStatus.CANCELLED)
# Errors worth another try from the checkpoint: the endpoint was slow, away or throttling past the budget.
TRANSIENT_ERRORS = (DynamoDBUnavailable, DynamoDBThrottled, BatchWriteIncomplete)
# The window (chunks sent + queued) after a page is handed over: PIPELINE_CHUNKS_PER_WRITER × concurrency, or
# the concurrency and one page, whichever is more. One page waits behind the calls in flight (pages of one
# chunk: 2 a writer thread) while the next is prepared.
PIPELINE_CHUNKS_PER_WRITER = 2
FRESH_LEASE_SECONDS = 5.0  # a lease taken this recently (at most a tenth of the lease) is the first page's check
# A unit's first pages grow by this factor up to LIZZY_MIGRATION_CHUNK_SIZE: preparing a page costs less
# than writing it (about 0.3 against 1 ms a row with 4 calls of 25 in flight at 100 ms each, loaded machine).
PAGE_RAMP = 3
# Pages of the unit taken ahead (``_Chain``) handed to a shared writer before the unit before drains: its
# first (one chunk a writer thread) and the next (PAGE_RAMP times that), four rounds of calls queued behind
# the last ones of the unit before; traced at 4 workers, one page alone (one round) ran out while that unit's
# last checkpoint, release and the run's totals were written and the next page was read, 30-60 ms a boundary
# with one call in flight or none (docs/MIGRATIONS.md, "One unit after another in a worker").
CHAIN_HEAD_PAGES = 2
# Units cut near an entity's end (``_guided_rows``) have at least 1/GUIDED_MIN_SHARE of the run's unit size.
GUIDED_MIN_SHARE = 8
IDLE_POLL_SECONDS = 0.2  # a runner with nothing to take looks again after this (units being cut, leases)
COUNTERS = (
    "rows_read",
    "items_written",
    "items_skipped",
    "rows_quarantined",
    "bytes_written",
    "write_units",
    "unprocessed_retries",
    "throttle_retries",
)


class RunFailed(ApplicationError):
    code = "run_failed"


class UnitLeased(ApplicationError):
    """Another runner holds the unit's lease: this one must not work on it (it may try after ``expires_at``)."""

    code = "unit_leased"


class LeaseLost(ApplicationError):
    """The runner's lease expired and another runner took the unit: stop, write nothing more."""

    code = "lease_lost"


@dataclass(frozen=True)
class Lease:
    segment_id: int
    fence: int
    owner: str
    taken_at: float = 0.0  # time.monotonic() of the fenced UPDATE that took it


def runner_name() -> str:
    """Who holds a lease: host, process, thread and a nonce (two calls never share a name)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def _unit_name(segment: Segment) -> str:
    return f"{segment.entity}[{segment.index}]"


def run_create(
    *,
    context: PlanContext,
    kind: str = RunKind.BACKFILL,
    segments: int = 1,
    limit: int | None = None,
    since: dt.datetime | None = None,
    max_bad_rows: int | None = None,
) -> MigrationRun:
    """A run and one open-ended unit per entity; runners cut further units as they take them.

    ``segments`` > 1 asks for about that many units per entity (the unit size is the estimated row count
    divided by it, at most ``LIZZY_MIGRATION_UNIT_ROWS``); estimates are planner statistics or one COUNT.
    """
    with transaction.atomic():
        MigrationPlan.objects.select_for_update().filter(pk=context.plan.pk).first()  # two starts at once: one run
        busy = context.plan.runs.filter(status__in=UNFINISHED).first()
        if busy:
            raise ApplicationError(ERR_RUN_BUSY.format(plan=context.plan.name, run=busy.pk))
        estimates = {}
        for entity in context.entities:
            estimates[entity.name] = context.source.estimate_rows(context.source.relation(entity), since=since)
        unit_rows = settings.LIZZY_MIGRATION_UNIT_ROWS
        if segments > 1:
            largest = max(estimates.values(), default=0)
            unit_rows = min(unit_rows, max(-(-largest // segments), 1))
        run = MigrationRun.objects.create(
            plan=context.plan,
            kind=kind,
            row_limit=limit,
            since=since,
            unit_rows=unit_rows,
            max_bad_rows=context.plan.max_bad_rows if max_bad_rows is None else max_bad_rows,
        )
        for entity in context.entities:
            expected = estimates[entity.name]
            Segment.objects.create(
                run=run,
                entity=entity.name,
                index=0,
                rows_expected=min(expected, limit) if limit else expected,
                open_ended=not limit,  # --limit: one unit of at most N rows, never cut
            )
    # change data capture: no catch-up, no run once the CDC worker applies. After the commit, so that of a
    # worker and a run starting at once at least one sees the other (cdc_guard_run deletes a refused run).
    cdc_guard_run(run=run)
    return run


def run_pending(*, plan: MigrationPlan) -> MigrationRun | None:
    """The unfinished run a new invocation should join (a killed worker leaves one behind)."""
    return plan.runs.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING]).first()


# --- leases ---------------------------------------------------------------------------------------------


def _lease_until() -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=settings.LIZZY_MIGRATION_LEASE_SECONDS)


def unit_lease(*, segment_id: int, owner: str) -> Lease:
    """Take a unit's lease, or raise ``UnitLeased`` while another runner holds it (or it is done)."""
    lease, segment = _lease_take(segment_id, owner)
    if lease is None:
        raise _leased(segment)
    return lease


def _lease_take(segment_id: int, owner: str) -> tuple[Lease | None, Segment]:
    """Two statements: the conditional UPDATE that takes the lease (not done, lease free or expired, run not
    stopped; one more on the fencing token), then the unit read with its run and plan.

    The lease is ours where the unit read holds what this UPDATE wrote: ``owner`` (``runner_name``: unique to
    its runner) and this take's expiry, to the microsecond: no transaction is needed to know that the token
    read is ours. A takeover between the two statements would need our lease to expire in between; the read
    would then show the other runner's, and the lease be refused, never shared.
    """
    now = timezone.now()
    until = _lease_until()
    (
        Segment.objects.filter(pk=segment_id, done=False)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(run_id__in=_runs_not_in(STOPPED))
        .update(fence=F("fence") + 1, lease_owner=owner, lease_expires_at=until, attempts=F("attempts") + 1)
    )
    segment = Segment.objects.select_related("run__plan").get(pk=segment_id)
    if segment.done or (segment.lease_owner, segment.lease_expires_at) != (owner, until):
        return None, segment
    return Lease(segment_id=segment_id, fence=segment.fence, owner=owner, taken_at=time.monotonic()), segment


def _leased(segment: Segment) -> UnitLeased:
    holder, expires, done = segment.lease_owner, segment.lease_expires_at, segment.done
    state = "done" if done else f"leased by {holder} until {expires:%H:%M:%S}" if expires else "not leased"
    return UnitLeased(f"unit {segment.pk} is {state}", details={"expires_at": expires, "done": done})


def _fenced(lease: Lease):
    return Segment.objects.filter(pk=lease.segment_id, fence=lease.fence, done=False)


def _runs_not_in(statuses) -> Any:
    """The runs not in ``statuses``, as a subquery of their ids for a unit's conditional UPDATE.

    Never a filter across the relation (``run__status``): Django makes that UPDATE ``WHERE id IN (SELECT U0.id
    FROM segment U0 JOIN run ...)``, with the unit's own conditions (fence, lease expiry) inside the subquery,
    and an UPDATE that waited for the row another runner's take held re-checks only its outer WHERE on the
    row's new version (PostgreSQL's READ COMMITTED): both takes of a free unit would take it, and a checkpoint
    would go through under a fence a takeover had just replaced (tests/review0203c/test_lease_races.py).
    """
    return MigrationRun.objects.exclude(status__in=statuses).values("pk")


def lease_renew(*, lease: Lease) -> None:
    """Extend the lease where the fencing token is still ours; ``LeaseLost`` otherwise (write nothing)."""
    if not _fenced(lease).update(lease_expires_at=_lease_until()):
        raise LeaseLost(f"unit {lease.segment_id}: lease {lease.fence} of {lease.owner} was lost")


def _lease_release(lease: Lease, **fields: Any) -> bool:
    return bool(_fenced(lease).update(lease_owner="", lease_expires_at=None, **fields))


# --- one unit -------------------------------------------------------------------------------------------


def segment_backfill(
    *,
    segment_id: int,
    context: PlanContext | None = None,
    on_rows: Callable[[int], None] | None = None,
    on_unit: Callable[[Segment], None] | None = None,
    owner: str | None = None,
    close_run: bool = False,
    chain: _Chain | None = None,
    started: _UnitState | None = None,
) -> Segment:
    """Run one unit under a lease, from its checkpoint to its end. A finished unit returns at once.

    Raises ``UnitLeased`` when another runner holds the unit, ``RunFailed`` when the run must fail.
    ``on_unit`` is told about every unit this one cuts off (Celery dispatch queues it). The run's totals are
    brought up to date when the unit ends; with ``close_run``, a unit that finished also closes the run
    ``succeeded`` where no unit is left, in the same UPDATE (``segment_run``). With ``chain``, the run's next
    free unit is taken while this one's last pages drain (``_Chain``); ``started`` is such a unit, its lease
    taken and its first pages sent, continued here.
    """
    if started is None:
        lease, segment = _lease_take(segment_id, owner or runner_name())
        run = segment.run
        if segment.done or run.status in STOPPED:
            if lease is not None:
                _lease_release(lease)  # the run stopped between the take and the read
            return segment  # a stopped run's redelivered or queued units wait for resume
        if lease is None:
            raise _leased(segment)
        if run.status == RunStatus.PENDING:  # a run's (or a resume's) first units: not one more UPDATE every unit
            MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
        ledger = KeyLedger()  # one per unit: its memory is bounded by the unit's rows (writer.py says what it sees)
    else:
        lease, segment, ledger = started.lease, started.segment, started.ledger
        run = segment.run
    done = False
    try:
        if context is None and chain is not None:
            context = chain.context(run.plan)  # one source connection for the units of a chain
        if context is None:
            with plan_context(plan=run.plan) as own:
                segment = _segment_guarded(lease, run, own, on_rows, ledger, on_unit, segment, chain, started)
        else:
            segment = _segment_guarded(lease, run, context, on_rows, ledger, on_unit, segment, chain, started)
        done = segment.done  # released with ``done`` by its last step
        return segment
    finally:
        if not done:
            _lease_release(lease)  # no-op once lost; otherwise the unit is free for the next runner
        _run_totals_update(run.pk, close=close_run and done)


def _segment_guarded(
    lease, run, context, on_rows, ledger, on_unit, segment: Segment, chain=None, started=None
) -> Segment:
    """Transient errors retried with backoff; any other failure names plan, table, rule, unit and source key.

    ``segment`` is the unit as read when its lease was taken (not read again unless an error is retried).
    ``started``: the unit was cut and its first pages sent by ``_Chain.start_next``; a retry starts it again
    from its checkpoint.
    """
    entity = context.entity(segment.entity)
    while True:
        try:
            if started is None and segment.open_ended:
                _unit_cut(lease, run, context, entity, on_unit, segment)
            return _segment_loop(lease, run, context, on_rows, ledger, segment, chain=chain, started=started)
        except (RunFailed, LeaseLost, UnitLeased):
            raise
        except TRANSIENT_ERRORS as exc:
            started = None
            if chain is not None:
                chain.abandon()  # a unit taken after this one goes back to its own task while this one backs off
                chain.deadline = 0.0  # and none more is taken ahead: one message more a chain, not one a boundary
            segment.refresh_from_db()
            if segment.retries < settings.LIZZY_MIGRATION_UNIT_RETRIES:
                _fenced(lease).update(retries=F("retries") + 1, last_error=exc.message[:2000])
                delay = random.uniform(0.5, 1.0) * settings.LIZZY_MIGRATION_RETRY_BACKOFF_SECONDS * 2**segment.retries  # noqa: S311
                logger.warning("run %s, unit %s: %s; retry in %.1f s", run.pk, _unit_name(segment), exc.message, delay)
                time.sleep(min(delay, settings.LIZZY_MIGRATION_LEASE_SECONDS / 3))
                lease_renew(lease=lease)
                segment.refresh_from_db()
                continue
            problem = ERR_RETRIES_EXHAUSTED.format(problem=_problem(exc), retries=segment.retries)
            raise _unit_failure(lease, run, entity, problem) from exc
        except Exception as exc:  # noqa: BLE001 - whatever stopped a unit, the run says where, never a bare traceback
            if not isinstance(exc, ApplicationError):
                logger.exception("run %s, unit %s failed", run.pk, lease.segment_id)
            raise _unit_failure(lease, run, entity, _problem(exc)) from exc


def _problem(exc: Exception) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message.split(" Nothing was written")[0]  # something may have been, by earlier pages
    # only a SourceError is scrubbed when raised; another exception may quote a value a driver or a row held
    return secrets_scrub(ERR_UNEXPECTED.format(type=type(exc).__name__, problem=exc))


def _unit_failure(lease: Lease, run: MigrationRun, entity: EntityMapping, problem: str) -> RunFailed:
    segment = Segment.objects.get(pk=lease.segment_id)
    written = Segment.objects.filter(run=run).aggregate(total=Sum("items_written"))["total"] or 0
    message = ERR_SEGMENT_FAILED.format(
        plan=run.plan.name,
        table=entity.target_table,
        rule=entity.rule,
        unit=_unit_name(segment),
        key=segment.last_key if segment.last_key is not None else "(start)",
        written=written,
        problem=problem,
    )
    _fenced(lease).update(last_error=message[:4000])
    return RunFailed(message)


def _unit_cut(
    lease: Lease, run: MigrationRun, context: PlanContext, entity: EntityMapping, on_unit, segment: Segment
) -> None:
    """Cut an open-ended unit ``unit_rows`` rows after its start, and the unit after it ``unit_rows`` further (a
    second keyset probe): that one is created cut, the rest becomes the next open-ended unit.

    The unit cut ahead is taken without a probe: the runner that takes it starts writing at once (the fan-out
    at a run's start reaches the next worker a cut sooner, and every other unit boundary is one probe and
    one transaction shorter: docs/MIGRATIONS.md, "Running on many machines"). ``segment`` (read under the
    lease) gets its new bounds.
    """
    relation = context.source.relation(entity)
    unit_rows = _guided_rows(run, segment)
    cut = context.source.key_after(relation, after=segment.lower_key, rows=unit_rows, since=run.since)
    ahead = None
    if cut is not None:
        ahead = context.source.key_after(relation, after=cut, rows=unit_rows, since=run.since)
    created: list[Segment] = []
    with transaction.atomic():
        fields = {"open_ended": False, "upper_key": cut}
        if cut is not None:
            fields["rows_expected"] = unit_rows
        if not _fenced(lease).update(**fields):
            raise LeaseLost(f"unit {lease.segment_id}: lease lost before its cut")
        if cut is not None:
            estimate = segment.rows_expected
            left = max(estimate - unit_rows, 0) if estimate is not None else None
            # The unit after the cut, cut already (to the entity's end when no row follows ``ahead``'s range)...
            created.append(
                Segment(
                    run=run,
                    entity=segment.entity,
                    index=segment.index + 1,
                    lower_key=cut,
                    last_key=cut,
                    upper_key=ahead,
                    open_ended=False,
                    rows_expected=min(unit_rows, left) if left is not None and ahead is None else unit_rows,
                )
            )
            if ahead is not None:  # ... and the rest of the entity: the next open-ended unit, cut by whoever takes it
                created.append(
                    Segment(
                        run=run,
                        entity=segment.entity,
                        index=segment.index + 2,
                        lower_key=ahead,
                        last_key=ahead,
                        open_ended=True,
                        rows_expected=max(left - unit_rows, 0) if left is not None else None,
                    )
                )
            if connection.features.can_return_rows_from_bulk_insert:  # PostgreSQL, SQLite: one INSERT
                created = Segment.objects.bulk_create(created)
            else:
                for unit in created:
                    unit.save(force_insert=True)
    for name, value in fields.items():
        setattr(segment, name, value)
    if on_unit is not None:
        for unit in created:
            on_unit(unit)  # after the commit above: a worker that takes it at once finds it


def _guided_rows(run: MigrationRun, segment: Segment) -> int:
    """Rows of each unit cut from the open-ended ``segment``: the run's unit size, and less near the entity's
    end, where the rows it is estimated to have left (``rows_expected``), shared by the runners at work, are
    fewer than two such units each (guided self-scheduling; at least ``GUIDED_MIN_SHARE`` of the unit size).

    The units cut last are then the smallest, and as runners take the largest free unit first
    (``_Chain.start_next``), the run's last units end within a small unit of each other, not a whole unit
    apart: traced at 4 workers, the runners' last calls ended 0.25-0.3 s apart in a 3.5-s run of equal units.
    No estimate (or an estimate spent while rows are left: it was low), or one runner, cuts units of the run's
    size. One statement (the run's live leases: a runner's units of a chain share its host, process and thread)
    where an estimate is left.
    """
    unit_rows = run.unit_rows or settings.LIZZY_MIGRATION_UNIT_ROWS
    left = segment.rows_expected
    if not left:
        return unit_rows
    owners = (
        Segment.objects.filter(run_id=run.pk, done=False, lease_expires_at__gt=timezone.now())
        .exclude(lease_owner="")
        .values_list("lease_owner", flat=True)
    )
    runners = len({owner.rsplit(":", 1)[0] for owner in owners})  # host:process:thread (``runner_name``)
    if runners < 2:
        return unit_rows  # one runner ends when the rows do, whatever the units' sizes
    share = -(-left // (2 * runners))
    return max(min(unit_rows, share), -(-unit_rows // GUIDED_MIN_SHARE))


def _segment_loop(
    lease: Lease,
    run: MigrationRun,
    context: PlanContext,
    on_rows,
    ledger,
    segment: Segment,
    *,
    chain: _Chain | None = None,
    started: _UnitState | None = None,
) -> Segment:
    state = started or _unit_open(lease, run, context, on_rows, ledger, segment, writer=chain.writer if chain else None)
    if state is None:  # the run's row budget is spent
        _lease_release(lease, done=True)
        segment.refresh_from_db()
        return segment
    pipeline = state.pipeline
    if chain is not None:
        chain.current, pipeline.on_wait = pipeline, chain.keep_alive  # its lease and the next unit's, kept alive
    try:
        if _unit_pump(context.source, state) and chain is not None:
            # Every page is handed over: the next unit's first pages queue behind this one's last calls.
            chain.start_next(run=run, context=context, on_rows=on_rows, after=segment.pk)
        pipeline.drain()
    except LeaseLost:
        raise  # nothing more is sent or checkpointed
    except Exception:
        # The source, a transform or a write failed: the pages DynamoDB accepted before keep their checkpoint
        # (as when one page was written at a time), then the error goes on (retried from that checkpoint).
        with contextlib.suppress(Exception):
            pipeline.drain()
        raise
    finally:
        if chain is not None and chain.current is pipeline:
            chain.current = None
        pipeline.close()  # after an error or a lost lease: chunks not yet sent are dropped, those in flight waited for
        state.pages.close()
    if not pipeline.stopped:
        _lease_release(lease, done=True)
    segment.refresh_from_db()  # stopped (paused, cancelled or failed elsewhere): the checkpoint is written
    return segment


@dataclass
class _UnitState:
    """A unit being written (``_unit_open``): its lease, pipeline and pages, pumped by ``_unit_pump``."""

    lease: Lease
    segment: Segment
    ledger: KeyLedger
    relation: Any
    pipeline: _UnitPipeline
    pages: Iterator[list]
    checkpoint: Any
    remaining: int | None
    handed_all: bool = False  # every page handed over (the pages or the row budget ran out): read no more


def _unit_open(lease, run, context, on_rows, ledger, segment: Segment, *, writer) -> _UnitState | None:
    """The unit's pipeline and pages from its checkpoint (``writer``: one shared with other units, or None for
    its own); None once the run's row budget is spent."""
    entity = context.entity(segment.entity)
    relation = context.source.relation(entity)
    chunk_size = settings.LIZZY_MIGRATION_CHUNK_SIZE
    remaining = None
    if run.row_limit:
        remaining = max(run.row_limit - segment.rows_read, 0)
    if remaining == 0:
        return None
    pipeline = _UnitPipeline(lease, run, entity, relation, _unit_name(segment), ledger, on_rows, writer=writer)
    page_size = min(chunk_size, remaining) if remaining else chunk_size
    # A unit's writer starts empty: a first page of one chunk a thread puts calls in flight sooner than a
    # whole page would (500 rows take 100-150 ms to read and prepare on a busy machine); then ``PAGE_RAMP``.
    first_size = page_size if pipeline.writer is None else min(page_size, pipeline.concurrency * BATCH_WRITE_MAX_ITEMS)
    pages = _unit_pages(
        context.source, relation, segment=segment, page_size=page_size, first_size=first_size, since=run.since
    )
    return _UnitState(lease, segment, ledger, relation, pipeline, pages, segment.last_key, remaining)


def _unit_pump(source, state: _UnitState, *, pages: int | None = None) -> bool:
    """Hand the unit's next pages to its pipeline (``pages`` of them, or all); whether every page is handed
    over (the pages ran out or the run's row budget did), not stopped. Once that is so, it reads nothing more
    (a unit taken ahead whose first page spent the budget)."""
    if state.handed_all:
        return True
    for handed, rows in enumerate(state.pages, start=1):
        rows, state.checkpoint = _budgeted(source, state.relation, rows, state.remaining, state.checkpoint)
        state.pipeline.write(rows, state.checkpoint)
        if state.pipeline.stopped:
            return False
        if state.remaining is not None:
            state.remaining -= len(rows)
            if state.remaining <= 0:
                state.handed_all = True
                state.pages.close()  # its cursor, before a unit taken ahead reads from the same source connection
                return True
        if pages is not None and handed >= pages:
            return False
    state.handed_all = True
    return True


class _Chain:
    """Units one after another in one worker: while a unit's last pages are in flight, the run's next free
    unit is taken (lease, cut) and its first pages (``CHAIN_HEAD_PAGES``) sent through the same writer, so the
    window of calls in flight stays full across the boundary (a unit's last round of calls, its last checkpoint
    and release, the next unit's lease, cut and first page were 40-90 ms without a call in flight a unit:
    docs/MIGRATIONS.md, "One unit after another in a worker"). For ``seconds`` from the first unit (a warm
    shutdown waits for the chain); each unit keeps its own lease, fencing, checkpoints and retries.

    A unit taken here still has its own Celery message: delivered later, it finds the unit done (or leased,
    and looks again when the lease would expire). Starting it (cut, first page) fails as in its own task: a
    transient error releases it and queues it again, anything else (bad rows past the run's limit, a source
    error, a cut's message that could not be queued) fails the run naming it.
    """

    def __init__(self, *, seconds: float, on_unit, owner: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.on_unit, self.owner = on_unit, owner
        concurrency = settings.LIZZY_MIGRATION_WRITE_CONCURRENCY
        self.writer = BatchWriter(concurrency=concurrency) if concurrency > 1 else None
        self.next: _UnitState | None = None
        self.current: _UnitPipeline | None = None  # the unit being written or drained (``_segment_loop``)
        self._stack = contextlib.ExitStack()
        self._context: PlanContext | None = None

    def context(self, plan: MigrationPlan) -> PlanContext:
        if self._context is None:
            self._context = self._stack.enter_context(plan_context(plan=plan))
        return self._context

    def start_next(self, *, run: MigrationRun, context: PlanContext, on_rows, after: int) -> None:
        if self.next is not None or time.monotonic() >= self.deadline:
            return
        # The open-ended rest of an entity first (cut at once, whatever its estimate: a low one says 0 rows),
        # then the largest free unit (the units cut near its end, smaller, last: ``_guided_rows``), and of
        # equal ones the most recently cut, whose own messages are the last in the queue.
        free = (
            Segment.objects.filter(run_id=run.pk, done=False)
            .exclude(pk=after)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now()))
            .order_by("-open_ended", F("rows_expected").desc(nulls_last=True), "-pk")
            .values_list("pk", flat=True)[:3]
        )
        for unit_id in list(free):
            lease, segment = _lease_take(unit_id, self.owner)
            if lease is None:
                continue  # another runner took it first, or it is done
            self._start(lease, segment, context, on_rows)
            return

    def _start(self, lease: Lease, segment: Segment, context: PlanContext, on_rows) -> None:
        """Cut the unit taken (if open-ended) and send its first pages; what fails here is handled as it
        would be in the unit's own task: a transient error leaves the unit to that task (released and queued
        again, retried there with backoff), anything else fails the run naming this unit."""
        run, entity, state = segment.run, context.entity(segment.entity), None
        try:
            if run.status in STOPPED:
                self._drop(None, lease, requeue=False)
                return
            if segment.open_ended:
                _unit_cut(lease, run, context, entity, self.on_unit, segment)
            state = _unit_open(lease, run, context, on_rows, KeyLedger(), segment, writer=self.writer)
            if state is not None:
                state.pipeline.on_wait = self.keep_alive  # its head waits keep the unit draining alive too
            if state is None:  # the run's row budget is spent: its own task ends the unit
                self._drop(None, lease)
                return
            # With a writer of its own thread (concurrency 1), pages are written in this thread: one only.
            _unit_pump(context.source, state, pages=CHAIN_HEAD_PAGES if self.writer is not None else 1)
            if state.pipeline.stopped:  # the run stopped while its first pages were written
                self._drop(state, lease, requeue=False)
                return
        except (LeaseLost, UnitLeased) as exc:
            logger.info("run %s: unit %s not taken ahead: %s", run.pk, _unit_name(segment), exc.message)
            self._drop(state, lease, requeue=False)
            return
        except TRANSIENT_ERRORS as exc:
            logger.warning("run %s, unit %s: %s; left to its own task", run.pk, _unit_name(segment), exc.message)
            self._drop(state, lease)
            self.deadline = 0.0  # no more units taken ahead: one message more per chain, not one a boundary
            return
        except RunFailed:
            self._drop(state, lease, requeue=False)
            raise
        except Exception as exc:  # noqa: BLE001 - as ``_segment_guarded``: the run says where, never a bare traceback
            if not isinstance(exc, ApplicationError):
                logger.exception("run %s, unit %s failed", run.pk, lease.segment_id)
            failure = _unit_failure(lease, run, entity, _problem(exc))
            self._drop(state, lease, requeue=False)
            raise failure from exc
        self.next = state

    def keep_alive(self) -> None:
        """Every lease the chain holds kept alive while one of its units waits for chunks
        (``_UnitPipeline._keep_alive``): the unit being written or drained, and the unit taken ahead, which is
        dropped if it lost its lease (taken over during a long drain): its chunks not sent yet are cancelled,
        the runner that took it over writes them. The first one's loss is its own pipeline's to raise
        (``_UnitPipeline.lost``), at its next look: raised here, in the head's wait, it would pass for the
        head's."""
        current = self.current
        if current is not None and current.lost is None:
            try:
                current.renew_if_due()
            except LeaseLost as exc:
                current.lost = exc
                current.stop.set()  # its chunks running send no retry more
                for future, _page in current.window:
                    future.cancel()  # its chunks not sent yet: the runner that took the unit writes them
        state = self.next
        if state is None:
            return
        try:
            state.pipeline.renew_if_due()
        except LeaseLost as exc:
            logger.warning("%s while the unit before drained; left to the runner that took it over", exc.message)
            self.next = None
            self._drop(state, state.lease, requeue=False)

    def take(self) -> _UnitState | None:
        state, self.next = self.next, None
        return state

    def abandon(self) -> None:
        """Release the unit started and not yet continued; its own task takes it from its checkpoint."""
        state, self.next = self.next, None
        if state is not None:
            self._drop(state, state.lease)

    def _drop(self, state: _UnitState | None, lease: Lease, *, requeue: bool = True) -> None:
        """Stop the unit's pipeline, release its lease and (``requeue``) queue it again: its own message may
        be waiting for the lease to expire (``backfill_segment_task`` looks again then), and the unit is free
        now."""
        if state is not None:
            with contextlib.suppress(Exception):
                state.pipeline.close()
                state.pages.close()
        if _lease_release(lease) and requeue and self.on_unit is not None:
            try:
                self.on_unit(Segment.objects.get(pk=lease.segment_id))
            except Exception:  # noqa: BLE001 - its own message still takes it, once the lease it saw expires
                logger.warning("unit %s released but not queued again", lease.segment_id, exc_info=True)

    def close(self) -> None:
        try:
            self.abandon()
        finally:
            if self.writer is not None:
                self.writer.close(cancel=True)
            self._stack.close()


def _unit_pages(source, relation, *, segment: Segment, page_size: int, first_size: int, since) -> Iterator[list]:
    """The unit's pages from its checkpoint: the first of ``first_size`` rows, each next one up to
    ``PAGE_RAMP`` times larger (read and prepared while the smaller one is in flight), then ``page_size``.

    Each size is read from the previous page's checkpoint, as a resume would read it (every source pages so).
    """
    after, size = segment.last_key, first_size
    while size < page_size:
        with contextlib.closing(
            source.pages(relation, after=after, upper=segment.upper_key, page_size=size, since=since)
        ) as ramp:
            page = next(ramp, None)
        if page is None:
            return
        yield page
        after, size = source.key_of(page[-1], relation), size * PAGE_RAMP
    with contextlib.closing(
        source.pages(relation, after=after, upper=segment.upper_key, page_size=page_size, since=since)
    ) as rest:
        yield from rest


@dataclass
class _Cost:
    """What a unit's calls consumed since its last checkpoint: every call counts, whether or not its page is
    checkpointed (a page written again after a transient error, or item by item after a refused chunk, costs
    both writes). Added from each call's ``BatchWriteResult`` and from what an error's failed calls consumed
    (``spent_of``), once: where the error is handled (the writer tells it to ``on_chunk``) or where it
    reaches the unit."""

    write_units: float = 0.0
    unprocessed_retries: int = 0
    throttle_retries: int = 0

    def add(self, spent: BatchWriteResult | None) -> None:
        if spent is None:
            return
        self.write_units += spent.write_units
        self.unprocessed_retries += spent.unprocessed_retries
        self.throttle_retries += spent.throttle_retries

    def __bool__(self) -> bool:
        return bool(self.write_units or self.unprocessed_retries or self.throttle_retries)


@dataclass
class _Page:
    prepared: PreparedPage
    rows: int
    last_key: Any
    pending: int  # chunks not settled yet
    refused: bool = False


class _UnitPipeline:
    """One unit's pages: the next page is read and transformed while the previous pages' chunks are in flight.

    ``LIZZY_MIGRATION_WRITE_CONCURRENCY`` chunks are sent at a time from a writer that lives as long as the
    unit (no thread pool per page, no pause between pages). A page is handed to the writer once it is
    prepared and no more than the concurrency's chunks are left before it (``PIPELINE_CHUNKS_PER_WRITER``
    a thread for pages of few chunks), so one page waits behind the calls in flight while the next is read
    and prepared: the writer's threads have a page of work queued when the caller goes back to the source,
    and memory stays bounded (the page being prepared, one page queued, the chunks in flight). A last-wins
    page that overwrites a key of an earlier page waits until the window is empty. Checkpoints are written
    in page order, each only once every chunk of its page and of every page before it was accepted; each
    checkpoint is fenced and renews the lease, and a page is handed over only after such a fenced write (or
    a renewal) since the previous page: a runner that lost its lease stops there, drops the chunks not sent
    yet and waits for those in flight (at most the concurrency). With a concurrency of 1, pages are written
    one after another, in the caller's thread.
    """

    def __init__(self, lease, run, entity, relation, unit, ledger, on_rows, *, writer=None) -> None:
        self.lease, self.run, self.entity, self.relation, self.unit = lease, run, entity, relation, unit
        self.ledger, self.on_rows = ledger, on_rows
        self.concurrency = settings.LIZZY_MIGRATION_WRITE_CONCURRENCY
        self.own_writer = writer is None  # else shared with the units of a chain (``_Chain``), closed by it
        if self.concurrency <= 1:
            writer = None
        elif writer is None:
            writer = BatchWriter(concurrency=self.concurrency)
        self.writer = writer
        self.pages: deque[_Page] = deque()
        self.window: deque[tuple[Any, _Page]] = deque()
        self.stopped = False
        self.stop = threading.Event()  # set by ``close``: this unit's chunks still running send no retry more
        self.cost = _Cost()  # counted with the next checkpoint, or by ``close`` where none comes
        self.on_wait: Callable[[], None] | None = None  # called at each ``_keep_alive`` (a chain's other leases)
        self.lost: LeaseLost | None = None  # found by a chain's keep-alive in another unit's wait, raised here
        self.keep_every = settings.LIZZY_MIGRATION_LEASE_SECONDS / 10
        self.renewed_at = lease.taken_at  # time.monotonic() before the last fenced write that extended the lease
        # The lease was taken by a fenced UPDATE moments ago: that is the first page's fencing check, unless
        # the source took long to answer (a takeover needs the lease expired: hundreds of seconds).
        self.fenced_until = lease.taken_at + min(FRESH_LEASE_SECONDS, settings.LIZZY_MIGRATION_LEASE_SECONDS / 10)

    def write(self, rows: list[dict[str, Any]], last_key: Any) -> None:
        if self.writer is None:
            # The fencing check before the write, refused once the run stopped: a page read while the run was
            # paused or cancelled is not sent (two statements a page with its checkpoint).
            self._renew()
            if self.stopped:
                return
            with self._counting():
                outcome = page_load(
                    entity=self.entity,
                    rows=rows,
                    relation=self.relation,
                    ledger=self.ledger,
                    on_chunk=self._on_chunk,  # the page's calls are sent in this thread
                )
            self._checkpoint(len(rows), last_key, outcome)
            return
        if self.lost is not None:
            raise self.lost
        if not self._settle(block=False) and time.monotonic() >= self.fenced_until:
            self._renew()  # no fenced checkpoint since the last page: the fencing check (and the run's stop)
        self.fenced_until = 0.0
        if self.stopped:
            return
        # Prepared while the previous page's chunks are queued behind the ones in flight: the writers stay busy.
        prepared = page_prepare(entity=self.entity, rows=rows, relation=self.relation, ledger=self.ledger)
        chunks = len(prepared.chunks)
        limit = max(PIPELINE_CHUNKS_PER_WRITER * self.concurrency, self.concurrency + chunks)
        if prepared.outcome.overwrites:
            limit = 0  # last-wins over a key an earlier page wrote: that page's writes are accepted first
        while self.window and len(self.window) + chunks > limit:
            self._settle_one()
            self._checkpoint_done()
        if self.stopped:
            return
        if self.lost is not None:  # found while the window emptied (the chain's look at this unit)
            raise self.lost
        if prepared.refused:  # the codec refused an item: the page item by item, now that its turn came
            with self._counting():
                page_rewrite(page=prepared, entity=self.entity, relation=self.relation, on_chunk=self._on_chunk)
        page = _Page(prepared, len(rows), last_key, pending=len(prepared.chunks))
        self.pages.append(page)
        if not prepared.chunks:  # every row set aside, or written item by item: checkpointed in its turn
            self._checkpoint_done()
        for chunk in prepared.chunks:
            self.window.append((self.writer.submit(chunk, table=self.entity.target_table, stop=self.stop), page))

    def drain(self) -> None:
        """Wait for every chunk sent and write the checkpoints (none after a stop)."""
        if self.writer is not None:
            self._settle(block=True)

    def close(self) -> None:
        """Drop the chunks not sent yet, stop the retries of those running and wait for them (an HTTP call
        cannot be taken back); then count what this unit's calls consumed since its last checkpoint
        (``_Cost``: a failed attempt is paid for, whether or not its pages are written again)."""
        self.stop.set()
        if self.writer is not None:
            if self.own_writer:
                self.writer.close(cancel=True)
            else:
                for future, _page in self.window:
                    future.cancel()  # a shared writer's other chunks are another unit's
                futures_wait([future for future, _page in self.window])
            for future, _page in self.window:
                if not future.cancelled():
                    self.cost.add(future.result() if future.exception() is None else spent_of(future.exception()))
            self.window.clear()
        self._count_cost()

    def _count_cost(self) -> None:
        """The cost not counted by a checkpoint, in one fenced UPDATE (none where there is none: a unit that
        ended with its last checkpoint). A lost lease's cost is not counted: its unit is another runner's."""
        cost, self.cost = self.cost, _Cost()
        if not cost:
            return
        try:
            counted = _fenced(self.lease).update(
                write_units=F("write_units") + cost.write_units,
                unprocessed_retries=F("unprocessed_retries") + cost.unprocessed_retries,
                throttle_retries=F("throttle_retries") + cost.throttle_retries,
            )
        except Exception:  # noqa: BLE001 - called on the way out of an error: that error is the one raised
            logger.warning("unit %s: %.1f write units of its last calls not counted", self.unit, cost.write_units)
            return
        if not counted:
            logger.info(
                "unit %s: lease lost, %.1f write units of its last calls not counted", self.unit, cost.write_units
            )

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        """Calls made in this thread (``on_chunk`` counts those that landed): what an error's failed calls
        consumed is counted too, as it goes on."""
        try:
            yield
        except Exception as exc:
            self.cost.add(spent_of(exc))
            raise

    def _settle_one(self) -> None:
        if self.lost is not None:
            raise self.lost  # nothing more is waited for or checkpointed: ``close`` drops what is not sent
        future, page = self.window[0]
        while not futures_wait([future], timeout=self.keep_every / 2)[0]:
            self._keep_alive()
        self._keep_alive()  # many short waits add up: what counts is the time since the lease was extended
        self.window.popleft()
        try:
            result = future.result()
        except Exception as exc:
            self.cost.add(spent_of(exc))
            if not page_refused(exc):
                raise
            page.refused = True  # rewritten item by item once its turn to be checkpointed comes
        else:
            self.cost.add(result)
            page_chunk_written(page.prepared, result)
        page.pending -= 1

    def _settle(self, *, block: bool) -> bool:
        """Settle the chunks done (all of them: ``block``), checkpointing each page as soon as it is done (a
        chunk that hangs does not hold back the checkpoints before it); whether a checkpoint was written."""
        written = self._checkpoint_done()
        while self.window and (block or self.window[0][0].done()):
            self._settle_one()
            written = self._checkpoint_done() or written
        return written

    def _checkpoint_done(self) -> bool:
        written = False
        while self.pages and self.pages[0].pending == 0 and not self.stopped:
            page = self.pages.popleft()
            if page.refused:
                with self._counting():
                    page_rewrite(
                        page=page.prepared, entity=self.entity, relation=self.relation, on_chunk=self._on_chunk
                    )
            self._checkpoint(page.rows, page.last_key, page.prepared.outcome)
            written = True
        return written

    def _keep_alive(self) -> None:
        """While chunks are waited for (throttling retried, a slow endpoint, many calls): the lease extended
        once a tenth of it passed since it last was, so that it does not expire under the chunks still queued
        (``LeaseLost`` where it is lost already: those are dropped), then the chain's other leases
        (``on_wait``: the unit draining, the unit taken ahead)."""
        self.renew_if_due()
        if self.on_wait is not None:
            self.on_wait()
            if self.lost is not None:  # found by the chain's look at this unit, in this very wait
                raise self.lost

    def _on_chunk(self, result: Any) -> None:
        """After each call a page sends in this thread (concurrency 1, an item-by-item rewrite): its cost
        counted, the lease kept alive."""
        self.cost.add(result)
        self._keep_alive()

    def renew_if_due(self) -> None:
        if self.lost is not None:
            raise self.lost
        now = time.monotonic()
        if now - self.renewed_at >= self.keep_every:
            lease_renew(lease=self.lease)
            self.renewed_at = now

    def _renew(self) -> None:
        """The lease renewed, as a checkpoint would: refused once the run stopped (paused, cancelled, failed
        elsewhere; then ``stopped``: no page more is handed over), ``LeaseLost`` where the token is not ours."""
        now = time.monotonic()
        if _fenced(self.lease).filter(run_id__in=_runs_not_in(STOPPED)).update(lease_expires_at=_lease_until()):
            self.renewed_at = now
            return
        if _fenced(self.lease).exists():
            self.stopped = True
            return
        raise LeaseLost(f"unit {self.unit}: lease {self.lease.fence} of {self.lease.owner} was lost")

    def _checkpoint(self, rows: int, last_key: Any, outcome) -> None:
        """The page's counters and checkpoint, fenced (``LeaseLost`` otherwise); none once the run stopped."""
        run, entity = self.run, self.entity
        # One UPDATE a page (no transaction unless rows are quarantined with it): fenced, and refused once the
        # run stopped (paused, cancelled, failed elsewhere), which is then told from a lost lease.
        now, cost = time.monotonic(), self.cost
        with transaction.atomic() if outcome.bad else contextlib.nullcontext():
            checkpointed = (
                _fenced(self.lease)
                .filter(run_id__in=_runs_not_in(STOPPED))  # pending or running
                .update(
                    last_key=last_key,
                    lease_expires_at=_lease_until(),
                    rows_read=F("rows_read") + rows,
                    items_written=F("items_written") + outcome.written,
                    items_skipped=F("items_skipped") + outcome.skipped,
                    rows_quarantined=F("rows_quarantined") + len(outcome.bad),
                    bytes_written=F("bytes_written") + outcome.bytes,
                    write_units=F("write_units") + cost.write_units,
                    unprocessed_retries=F("unprocessed_retries") + cost.unprocessed_retries,
                    throttle_retries=F("throttle_retries") + cost.throttle_retries,
                )
            )
            if not checkpointed:
                if _fenced(self.lease).exists():
                    self.stopped = True  # the run stopped before this page: its checkpoint is the one before
                    return
                raise LeaseLost(f"unit {self.unit}: lease lost while writing before {last_key}")
            if outcome.bad:
                _quarantine(run, entity, outcome.bad)
        # Committed (with its quarantined rows, where a failed INSERT rolls the checkpoint and its cost back:
        # ``close`` counts that cost then).
        self.renewed_at, self.cost = now, _Cost()
        if outcome.bad:
            _fail_past_limit(run, entity, outcome.bad, unit=self.unit)
        if self.on_rows:
            self.on_rows(rows)


def _budgeted(source, relation, rows: list, remaining: int | None, checkpoint: Any) -> tuple[list, Any]:
    """The page cut to the row budget, and the checkpoint after it: never past a row left unread.

    Rows of a source that checkpoints per page (Redis: SCAN's cursor after the page) share one checkpoint;
    a budget ending inside such a page keeps the checkpoint before the page (its written rows are written
    again by a resume: PutRequest is a full overwrite), not the cursor past the rows it did not copy.
    """
    if remaining is None or len(rows) <= remaining:
        return rows, source.key_of(rows[-1], relation)
    kept = rows[:remaining]
    last_key = source.key_of(kept[-1], relation)
    if last_key == source.key_of(rows[remaining], relation):
        return kept, checkpoint
    return kept, last_key


def row_error_text(*, plan: MigrationPlan, entity: EntityMapping, bad: BadRow) -> str:
    table = f"{entity.schema}.{entity.table}" if entity.table else "source-query"
    return ERR_ROW.format(plan=plan.name, table=table, rule=entity.rule, key=bad.source_key, reason=bad.reason)


def _quarantine(run: MigrationRun, entity: EntityMapping, bad: list[BadRow]) -> None:
    source_table = f"{entity.schema}.{entity.table}" if entity.table else "source-query"
    QuarantinedRow.objects.bulk_create(
        QuarantinedRow(
            plan_id=run.plan_id,
            run=run,
            rule=entity.rule,
            source_table=source_table,
            target_table=entity.target_table,
            source_key=row.source_key,
            reason=row.reason,
            row=row.row,
        )
        for row in bad
    )
    for row in bad:
        logger.warning("run %s: %s", run.pk, row_error_text(plan=run.plan, entity=entity, bad=row))


def _fail_past_limit(run: MigrationRun, entity: EntityMapping, bad: list[BadRow], *, unit: str) -> None:
    count = QuarantinedRow.objects.filter(run=run).count()
    # The allowance as stored now: a resume may have raised it since this unit read its run (run_reopen).
    limit = MigrationRun.objects.values_list("max_bad_rows", flat=True).get(pk=run.pk)
    if count > limit:
        # Name the row that went over the limit (with the default 0: the first bad row).
        crossing = bad[min(max(limit - (count - len(bad)), 0), len(bad) - 1)]
        raise RunFailed(
            ERR_TOO_MANY_BAD_ROWS.format(
                count=count,
                limit=limit,
                unit=unit,
                row=row_error_text(plan=run.plan, entity=entity, bad=crossing),
            )
        )


# --- the run ------------------------------------------------------------------------------------------


def run_totals_refresh(*, run_id: int) -> None:
    """The run's counters := the sum of its units' (idempotent: a redelivered unit cannot count twice)."""
    _run_totals_update(run_id, close=False)


def _unit_total(name: str) -> Coalesce:
    units = Segment.objects.filter(run_id=OuterRef("pk")).order_by().values("run_id")
    field = Segment._meta.get_field(name)
    return Coalesce(
        Subquery(units.annotate(total=Sum(name)).values("total"), output_field=field), Value(0), output_field=field
    )


def _run_totals_update(run_id: int, *, close: bool) -> None:
    """``run_totals_refresh`` in one UPDATE (a subquery a counter); with ``close``, the same UPDATE also closes
    the run ``succeeded`` where it is pending or running and none of its units is left (``run_finish``)."""
    fields: dict[str, Any] = {name: _unit_total(name) for name in COUNTERS}
    fields["items_failed"] = _unit_total("rows_quarantined")
    if close:
        closing = Q(status__in=[RunStatus.PENDING, RunStatus.RUNNING]) & ~Exists(
            Segment.objects.filter(run_id=OuterRef("pk"), done=False)
        )
        fields["status"] = Case(When(closing, then=Value(RunStatus.SUCCEEDED)), default=F("status"))
        fields["finished_at"] = Case(When(closing, then=Value(timezone.now())), default=F("finished_at"))
    run = MigrationRun.objects.filter(pk=run_id)
    if not connection.features.has_select_for_update:  # SQLite: one writer at a time, the UPDATE sees the latest
        run.update(**fields)
        return
    # An UPDATE's subqueries read the snapshot its statement started with, even after waiting for the row
    # another unit's totals update holds (PostgreSQL's READ COMMITTED): that unit's counters, committed while
    # this one waited, would be missed, and the run left unclosed or its totals short. The row lock first,
    # then the UPDATE in a statement of its own, whose snapshot follows every earlier update's commit.
    with transaction.atomic():
        list(run.select_for_update().values_list("pk", flat=True))
        run.update(**fields)


def run_fail(*, run_id: int, error: str) -> MigrationRun:
    """The run is ``failed`` with ``error``, at once; the first error wins (other units stop at their next page)."""
    if MigrationRun.objects.filter(pk=run_id, status__in=UNFINISHED).update(
        status=RunStatus.FAILED, last_error=error[:4000], finished_at=timezone.now()
    ):
        logger.error("run %s failed: %s", run_id, error)
    run_totals_refresh(run_id=run_id)
    return MigrationRun.objects.get(pk=run_id)


def run_finish(*, run_id: int, error: str = "") -> MigrationRun:
    """Close a run: failed with ``error``, succeeded when every unit is done, else left as it is."""
    if error:
        return run_fail(run_id=run_id, error=error)
    _run_totals_update(run_id, close=True)
    return MigrationRun.objects.get(pk=run_id)


def segment_run(
    *, segment_id: int, on_unit: Callable[[Segment], None] | None = None, chain_seconds: float = 0.0
) -> Segment:
    """One unit as a Celery task runs it: the last unit to finish closes the run; a failure fails it at once.

    With ``chain_seconds``, the run's next free units follow it in this call for that long, each taken while
    the one before drains (``_Chain``). Raises ``UnitLeased`` (the caller may look again after the lease
    expires) and, after failing the run, ``RunFailed``. Returns the unit ``segment_id``.
    """
    chain = _Chain(seconds=chain_seconds, on_unit=on_unit, owner=runner_name()) if chain_seconds > 0 else None
    unit_id, started, first = segment_id, None, None
    try:
        while True:
            try:
                # the unit's end brings the run's totals up to date and, if it was the last, closes the run: one UPDATE
                segment = segment_backfill(
                    segment_id=unit_id, on_unit=on_unit, close_run=True, chain=chain, started=started
                )
            except LeaseLost as exc:
                logger.warning("%s; the runner that took it over continues", exc.message)
                segment = Segment.objects.get(pk=unit_id)
            except RunFailed as exc:
                if chain is not None:
                    chain.abandon()
                run_fail(run_id=Segment.objects.values_list("run_id", flat=True).get(pk=unit_id), error=exc.message)
                raise
            first = first or segment
            started = chain.take() if chain is not None else None
            if started is None:
                return first
            unit_id = started.segment.pk
    finally:
        if chain is not None:
            chain.close()


def _next_units(run_id: int) -> tuple[list[int], dt.datetime | None]:
    """Units a runner may take now (not done, lease free or expired), and when the next lease held expires."""
    now = timezone.now()
    pending = Segment.objects.filter(run_id=run_id, done=False)
    free = list(
        pending.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("entity", "index")
        .values_list("pk", flat=True)
    )
    held = pending.filter(lease_expires_at__gte=now).aggregate(Max("lease_expires_at"))["lease_expires_at__max"]
    return free, held


def run_execute(
    *, run: MigrationRun, context: PlanContext, workers: int = 1, on_rows: Callable[[int], None] | None = None
) -> MigrationRun:
    """Work on the run's units in this process (``workers`` threads) until none is left, then close the run.

    Units leased by other runners (another invocation, Celery workers) are left to them; this one waits
    until they are done, or takes them over once their lease expires. Safe to run on many machines at once.
    """
    MigrationRun.objects.filter(pk=run.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
        status=RunStatus.RUNNING, last_error=""
    )
    # SQLite serialises writers (and an in-memory test database cannot be shared between threads):
    # with it, units run one after another; parallelism then comes from Celery workers.
    if connection.vendor == "sqlite":
        workers = 1
    failure: list[str] = []

    def loop(own: PlanContext, callback) -> None:
        owner = runner_name()
        while not failure:
            if MigrationRun.objects.filter(pk=run.pk, status__in=STOPPED).exists():
                return
            free, held_until = _next_units(run.pk)
            if not free and held_until is None:
                return  # every unit is done
            if not free:
                time.sleep(IDLE_POLL_SECONDS)  # units held by other runners: done soon, or taken over
                continue
            for segment_id in free:
                try:
                    segment_backfill(segment_id=segment_id, context=own, on_rows=callback, owner=owner)
                except (UnitLeased, LeaseLost):
                    continue  # another runner has it
                except RunFailed as exc:
                    failure.append(exc.message)
                    return
                break  # look again: cutting a unit made a new one

    if workers <= 1:
        loop(context, on_rows)
    else:
        lock = threading.Lock()

        def work(_number: int) -> None:
            # Each thread gets its own source connection: DB-API connections are not shared.
            try:
                with plan_context(plan=run.plan) as own:
                    loop(own, _locked(on_rows, lock))
            finally:
                connections.close_all()  # this thread's own Django connections

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
            list(pool.map(work, range(workers)))
    if failure:
        return run_fail(run_id=run.pk, error=failure[0])
    return run_finish(run_id=run.pk)


def run_pause(*, run: MigrationRun) -> MigrationRun:
    """Stop after the page in flight: each unit keeps its checkpoint and the run waits for resume."""
    if not MigrationRun.objects.filter(pk=run.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
        status=RunStatus.PAUSED
    ):
        run.refresh_from_db()
        raise PreconditionFailed(ERR_NOT_PAUSABLE.format(run=run.pk, status=run.status))
    run.refresh_from_db()
    return run


def run_cancel(*, run: MigrationRun) -> MigrationRun:
    """Stop after the page in flight, for good unless resumed; the checkpoints are kept."""
    if not MigrationRun.objects.filter(pk=run.pk, status__in=UNFINISHED).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now()
    ):
        run.refresh_from_db()
        raise PreconditionFailed(ERR_NOT_CANCELLABLE.format(run=run.pk, status=run.status))
    run.refresh_from_db()
    return run


def run_reopen(*, run: MigrationRun, max_bad_rows: int | None = None) -> MigrationRun:
    """A failed, paused or cancelled run back to pending: its units continue from their checkpoints.

    The rows it may quarantine: ``max_bad_rows`` where given (the operator's ``--resume RUN --max-bad-rows
    N``), else the larger of the run's and its plan's (raised on the plan, then resumed from the console). A
    run that quarantined more than that is not resumed: it would end ``succeeded`` past its allowance (its
    bad rows are checkpointed past when the run fails for them), or fail again at its next bad row.
    """
    with transaction.atomic():
        plan = MigrationPlan.objects.select_for_update().get(pk=run.plan_id)
        busy = MigrationRun.objects.filter(plan_id=run.plan_id, status__in=UNFINISHED).exclude(pk=run.pk).first()
        if busy:
            raise PreconditionFailed(ERR_RUN_BUSY.format(plan=run.plan.name, run=busy.pk))
        run.refresh_from_db()
        allowed = max(run.max_bad_rows, plan.max_bad_rows) if max_bad_rows is None else max_bad_rows
        quarantined = QuarantinedRow.objects.filter(run=run).count()
        if run.status in RESUMABLE and quarantined > allowed:
            raise PreconditionFailed(
                ERR_RESUME_BAD_ROWS.format(run=run.pk, count=quarantined, limit=allowed, plan=plan.name)
            )
        if not MigrationRun.objects.filter(pk=run.pk, status__in=RESUMABLE).update(
            status=RunStatus.PENDING, last_error="", finished_at=None, max_bad_rows=allowed
        ):
            run.refresh_from_db()
            raise PreconditionFailed(ERR_NOT_RESUMABLE.format(run=run.pk, status=run.status))
        # A failed unit's error stays in its row for the record; its retry budget starts again.
        left = Segment.objects.filter(run=run, done=False).update(retries=0)
    if not left:
        # Stopped after its last unit's last checkpoint (that unit still released done): no unit is left to
        # close it, so the resume does, as the last unit would have (``succeeded``, its totals).
        _run_totals_update(run.pk, close=True)
    run.refresh_from_db()
    return run


def _locked(callback, lock):
    if callback is None:
        return None

    def call(count: int) -> None:
        with lock:
            callback(count)

    return call


def catch_up_since(*, plan: MigrationPlan) -> dt.datetime | None:
    """Rows changed after the start of the last successful run (its start, not its end: no gap)."""
    last = plan.runs.filter(status=RunStatus.SUCCEEDED).order_by("-started_at").first()
    return last.started_at if last else None


def dry_run_sample(*, context: PlanContext, limit: int = 3) -> list[dict[str, Any]]:
    """The first items each entity would write, for ``--dry-run``; nothing is written."""
    sample = []
    for entity in context.entities:
        relation = context.source.relation(entity)
        for rows in context.source.pages(relation, after=None, upper=None, page_size=limit):
            sample += [{"table": entity.target_table, "item": entity.transform(row)} for row in rows[:limit]]
            break
    return sample
