"""Runs: a backfill or catch-up cut into segments, each read → transformed → written with a checkpoint.

A run is cut into segments (per entity, by source key range). Each segment is independent: it reads
pages after its checkpoint (``migration_app.sources``), hands each page to the load stage
(``services.writer``: transform, key ledger, BatchWriteItem), quarantines the rows that could not become
items, then stores the last key it read. A segment killed in the middle is picked up by the next worker
from that key; a page written twice writes the same items (PutRequest is a full overwrite), so
at-least-once delivery (``acks_late``) is safe.

A run fails, with the plan, table, rule and source key in its error, when more rows are quarantined than
its ``max_bad_rows`` (default 0: one bad row fails the run), or when reading or writing fails.
Dispatching segments to Celery is ``services.dispatch``'s job, not this module's.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from lizzy.dynamodb import consumed_capacity
from lizzy.errors import ApplicationError, PreconditionFailed
from migration_app.cdc.streams import cdc_guard_run
from migration_app.models import MigrationPlan, MigrationRun, QuarantinedRow, RunKind, RunStatus, Segment
from migration_app.services.mapping import EntityMapping
from migration_app.services.plans import PlanContext, plan_context
from migration_app.services.writer import BadRow, KeyLedger, page_load

logger = logging.getLogger(__name__)

ERR_RUN_BUSY = "Plan {plan} already has run #{run} in progress; resume it instead of starting another."
ERR_NOT_PAUSABLE = "Run #{run} is {status}; only a pending or running run can be paused."
ERR_NO_RUN = "Plan {plan} has no run to {verb}."
ERR_ROW = "plan {plan}, table {table}, rule {rule}, source key {key}: {reason}"
ERR_TOO_MANY_BAD_ROWS = (
    "{count} row(s) quarantined, more than the {limit} this run allows (--max-bad-rows / the plan's max_bad_rows); "
    "the row that went over: {row}"
)
ERR_SEGMENT_FAILED = (
    "plan {plan}, table {table}, rule {rule}, after source key {key} ({written} item(s) written): {problem}"
)
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)


class RunFailed(ApplicationError):
    code = "run_failed"


def run_create(
    *,
    context: PlanContext,
    kind: str = RunKind.BACKFILL,
    segments: int = 1,
    limit: int | None = None,
    since: dt.datetime | None = None,
    max_bad_rows: int | None = None,
) -> MigrationRun:
    """A run and its segments: each entity's key range cut into about equal slices."""
    busy = context.plan.runs.filter(status__in=UNFINISHED).first()
    if busy:
        raise ApplicationError(ERR_RUN_BUSY.format(plan=context.plan.name, run=busy.pk))
    run = MigrationRun.objects.create(
        plan=context.plan,
        kind=kind,
        row_limit=limit,
        since=since,
        max_bad_rows=context.plan.max_bad_rows if max_bad_rows is None else max_bad_rows,
    )
    cdc_guard_run(run=run)  # change data capture: no catch-up, no run once the CDC worker applies
    for entity in context.entities:
        relation = context.source.relation(entity)
        cuts = [] if limit else context.source.boundaries(relation, segments=segments, since=since)
        bounds = [None, *cuts, None]
        for index in range(len(bounds) - 1):
            expected = context.source.count(relation, since=since, lower=bounds[index], upper=bounds[index + 1])
            Segment.objects.create(
                run=run,
                entity=entity.name,
                index=index,
                lower_key=bounds[index],
                upper_key=bounds[index + 1],
                last_key=bounds[index],
                rows_expected=min(expected, limit) if limit else expected,
            )
    return run


def run_pending(*, plan: MigrationPlan) -> MigrationRun | None:
    """The unfinished run a new invocation should resume (a killed worker leaves one behind)."""
    return plan.runs.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING]).first()


def _write_units(before: dict, table: str) -> float:
    after = consumed_capacity()
    key = (table, "BatchWriteItem")
    return after.get(key, {}).get("write", 0.0) - before.get(key, {}).get("write", 0.0)


def segment_backfill(
    *,
    segment_id: int,
    context: PlanContext | None = None,
    on_rows: Callable[[int], None] | None = None,
    ledger: KeyLedger | None = None,
) -> Segment:
    """Run one segment from its checkpoint to its end. Idempotent: a finished segment returns at once."""
    segment = Segment.objects.select_related("run__plan").get(pk=segment_id)
    if segment.done or segment.run.status == RunStatus.PAUSED:
        return segment  # a paused run's redelivered or queued segments wait for resume
    run = segment.run
    Segment.objects.filter(pk=segment.pk).update(attempts=F("attempts") + 1)
    MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
    ledger = ledger or KeyLedger()
    if context is None:
        with plan_context(plan=run.plan) as own:
            return _segment_guarded(segment, run, own, on_rows, ledger)
    return _segment_guarded(segment, run, context, on_rows, ledger)


def _segment_guarded(segment, run, context, on_rows, ledger) -> Segment:
    """Any failure names the plan, table, rule and the last source key written (never a bare traceback)."""
    entity = context.entity(segment.entity)
    try:
        return _segment_loop(segment, run, context, on_rows, ledger)
    except RunFailed:
        raise
    except ApplicationError as exc:
        segment.refresh_from_db()
        written = MigrationRun.objects.values_list("items_written", flat=True).get(pk=run.pk)
        problem = exc.message.split(" Nothing was written")[0]  # something may have been, by earlier pages
        raise RunFailed(
            ERR_SEGMENT_FAILED.format(
                plan=run.plan.name,
                table=entity.target_table,
                rule=entity.rule,
                key=segment.last_key if segment.last_key is not None else "(start)",
                written=written,
                problem=problem,
            )
        ) from exc


def _segment_loop(segment: Segment, run: MigrationRun, context: PlanContext, on_rows, ledger) -> Segment:
    entity = context.entity(segment.entity)
    relation = context.source.relation(entity)
    chunk_size = settings.LIZZY_MIGRATION_CHUNK_SIZE
    remaining = None
    if run.row_limit:
        remaining = max(run.row_limit - segment.rows_read, 0)
    if remaining == 0:
        Segment.objects.filter(pk=segment.pk).update(done=True)
        segment.refresh_from_db()
        return segment
    for rows in context.source.pages(
        relation,
        after=segment.last_key,
        upper=segment.upper_key,
        page_size=min(chunk_size, remaining) if remaining else chunk_size,
        since=run.since,
    ):
        if remaining is not None:
            rows = rows[:remaining]
        before = consumed_capacity()
        outcome = page_load(entity=entity, rows=rows, relation=relation, ledger=ledger)
        units = _write_units(before, entity.target_table)
        last_key = context.source.key_of(rows[-1], relation)
        with transaction.atomic():
            Segment.objects.filter(pk=segment.pk).update(
                last_key=last_key,
                rows_read=F("rows_read") + len(rows),
                items_written=F("items_written") + outcome.written,
                items_skipped=F("items_skipped") + outcome.skipped,
            )
            MigrationRun.objects.filter(pk=run.pk).update(
                rows_read=F("rows_read") + len(rows),
                items_written=F("items_written") + outcome.written,
                items_skipped=F("items_skipped") + outcome.skipped,
                items_failed=F("items_failed") + len(outcome.bad),
                rows_quarantined=F("rows_quarantined") + len(outcome.bad),
                bytes_written=F("bytes_written") + outcome.bytes,
                write_units=F("write_units") + units,
                unprocessed_retries=F("unprocessed_retries") + outcome.unprocessed_retries,
                throttle_retries=F("throttle_retries") + outcome.throttle_retries,
            )
            if outcome.bad:
                _quarantine(run, entity, outcome.bad)
        if outcome.bad:
            _fail_past_limit(run, entity, outcome.bad)
        if on_rows:
            on_rows(len(rows))
        if remaining is not None:
            remaining -= len(rows)
            if remaining <= 0:
                break
        if MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PAUSED).exists():
            segment.refresh_from_db()  # paused: the checkpoint is written, resume continues after it
            return segment
    Segment.objects.filter(pk=segment.pk).update(done=True)
    segment.refresh_from_db()
    return segment


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


def _fail_past_limit(run: MigrationRun, entity: EntityMapping, bad: list[BadRow]) -> None:
    count = MigrationRun.objects.values_list("rows_quarantined", flat=True).get(pk=run.pk)
    if count > run.max_bad_rows:
        # Name the row that went over the limit (with the default 0: the first bad row).
        crossing = bad[min(max(run.max_bad_rows - (count - len(bad)), 0), len(bad) - 1)]
        raise RunFailed(
            ERR_TOO_MANY_BAD_ROWS.format(
                count=count, limit=run.max_bad_rows, row=row_error_text(plan=run.plan, entity=entity, bad=crossing)
            )
        )


def run_finish(*, run_id: int, error: str = "") -> MigrationRun:
    run = MigrationRun.objects.get(pk=run_id)
    if error:
        run.status, run.last_error = RunStatus.FAILED, error[:4000]
    elif run.segments.filter(done=False).exists():
        return run
    else:
        run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "last_error", "finished_at"])
    return run


def run_execute(
    *, run: MigrationRun, context: PlanContext, workers: int = 1, on_rows: Callable[[int], None] | None = None
) -> MigrationRun:
    """Run every unfinished segment in this process (``workers`` threads), then close the run."""
    pending = list(run.segments.filter(done=False).values_list("pk", flat=True))
    MigrationRun.objects.filter(pk=run.pk).exclude(status=RunStatus.PAUSED).update(
        status=RunStatus.RUNNING, last_error=""
    )
    ledger = KeyLedger()  # one per run in this process: collisions between its segments are caught too
    # SQLite serialises writers (and an in-memory test database cannot be shared between threads):
    # with it, segments run one after another; parallelism then comes from Celery workers.
    if connection.vendor == "sqlite":
        workers = 1
    try:
        if workers <= 1 or len(pending) <= 1:
            for segment_id in pending:
                segment_backfill(segment_id=segment_id, context=context, on_rows=on_rows, ledger=ledger)
        else:
            lock = threading.Lock()

            def work(segment_id: int) -> None:
                # Each thread gets its own source connection: DB-API connections are not shared.
                try:
                    with plan_context(plan=run.plan) as own:
                        segment_backfill(
                            segment_id=segment_id, context=own, on_rows=_locked(on_rows, lock), ledger=ledger
                        )
                finally:
                    connections.close_all()  # this thread's own Django connections

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
                list(pool.map(work, pending))
    except ApplicationError as exc:
        return run_finish(run_id=run.pk, error=exc.message)
    return run_finish(run_id=run.pk)


def run_pause(*, run: MigrationRun) -> MigrationRun:
    """Stop after the chunk in flight: each segment keeps its checkpoint and the run waits for resume."""
    if not MigrationRun.objects.filter(pk=run.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
        status=RunStatus.PAUSED
    ):
        run.refresh_from_db()
        raise PreconditionFailed(ERR_NOT_PAUSABLE.format(run=run.pk, status=run.status))
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
