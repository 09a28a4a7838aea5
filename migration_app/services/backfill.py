"""Backfill and catch-up: source rows → items → BatchWriteItem, a checkpoint after every chunk.

A run is cut into segments (per entity, by source key range). Each segment is independent: it reads
pages after its checkpoint, writes them with ``dynamodb_batch_write`` (25 per call, 16 MB, retries of
UnprocessedItems and throttling), then stores the last key it wrote. A segment killed in the middle is
picked up by the next worker from that key; a chunk written twice writes the same items (PutRequest is
a full overwrite), so at-least-once delivery (``acks_late``) is safe.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from lizzy.dynamodb import consumed_capacity, dynamodb_batch_write, dynamodb_describe_table
from lizzy.errors import ApplicationError, NotFound, PreconditionFailed
from lizzy.tables import TableSpec, table_ensure
from migration_app.models import MigrationPlan, MigrationRun, RunKind, RunStatus, Segment
from migration_app.services.mapping import EntityMapping, TableMapping, mapping_parse, mapping_resolve, table_specs
from migration_app.services.sources import SqlSource, source_open

logger = logging.getLogger(__name__)

ERR_PLAN_MISSING = "No migration plan {plan!r}. Known plans: {known}."
ERR_RUN_BUSY = "Plan {plan} already has run #{run} in progress; resume it instead of starting another."
ERR_NOT_PAUSABLE = "Run #{run} is {status}; only a pending or running run can be paused."
ERR_NOT_PAUSED = "Run #{run} is {status}; only a paused run can be resumed."
ERR_NO_RUN = "Plan {plan} has no run to {verb}."
ERR_START_PHASE = "Plan {plan} is in {phase}; a backfill starts in setup or backfill, a catch-up in parallel."
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)

DUPLICATE_SAMPLE_SIZE = 20


@dataclass
class PlanContext:
    plan: MigrationPlan
    mapping: TableMapping
    entities: list[EntityMapping]
    source: SqlSource
    specs: list[TableSpec]

    def entity(self, name: str) -> EntityMapping:
        return next(entity for entity in self.entities if entity.name == name)


@contextmanager
def plan_context(*, plan: MigrationPlan) -> Iterator[PlanContext]:
    """The plan's mapping checked and bound to an open source connection."""
    mapping = mapping_parse(document=plan.mapping)
    source = source_open(url=plan.source_url)
    try:
        entities = mapping_resolve(mapping=mapping, source=source)
        specs = table_specs(mapping=mapping, entities=entities)
        yield PlanContext(plan, mapping, entities, source, specs)
    finally:
        source.close()


def plan_get(*, name_or_id: str | int) -> MigrationPlan:
    text = str(name_or_id)
    plan = MigrationPlan.objects.filter(name=text).first()
    if plan is None and text.isdigit():
        plan = MigrationPlan.objects.filter(pk=int(text)).first()
    if plan is None:
        known = ", ".join(MigrationPlan.objects.values_list("name", flat=True)) or "none"
        raise NotFound(ERR_PLAN_MISSING.format(plan=text, known=known))
    return plan


def plan_check(*, mapping: dict[str, Any], source_url: str) -> list[EntityMapping]:
    """Check a mapping against its source without writing anything (raises MappingError)."""
    parsed = mapping_parse(document=mapping)
    with source_open(url=source_url) as source:
        entities = mapping_resolve(mapping=parsed, source=source)
        table_specs(mapping=parsed, entities=entities)
    return entities


def plan_save(*, name: str, source_url: str, mapping: dict[str, Any]) -> MigrationPlan:
    """Create or update a plan; the mapping is checked against the source first."""
    entities = plan_check(mapping=mapping, source_url=source_url)
    targets = list(dict.fromkeys(entity.target_table for entity in entities))
    plan, _created = MigrationPlan.objects.update_or_create(
        name=name, defaults={"source_url": source_url, "mapping": mapping, "target_tables": targets}
    )
    return plan


def plan_setup_tables(*, context: PlanContext) -> list[str]:
    """Create missing target tables from the mapping's keys and GSIs (on demand, TTL), as DMS does."""
    created = []
    for spec in context.specs:
        existed = dynamodb_describe_table(table=spec.base_name) is not None
        table_ensure(spec=spec, name=spec.base_name)
        if not existed:
            created.append(spec.base_name)
    if created:
        plan = context.plan
        plan.created_tables = sorted(set(plan.created_tables) | set(created))
        plan.save(update_fields=["created_tables", "updated_at"])
    return created


def run_create(
    *,
    context: PlanContext,
    kind: str = RunKind.BACKFILL,
    segments: int = 1,
    limit: int | None = None,
    since: dt.datetime | None = None,
) -> MigrationRun:
    """A run and its segments: each entity's key range cut into about equal slices."""
    busy = context.plan.runs.filter(status__in=UNFINISHED).first()
    if busy:
        raise ApplicationError(ERR_RUN_BUSY.format(plan=context.plan.name, run=busy.pk))
    run = MigrationRun.objects.create(plan=context.plan, kind=kind, row_limit=limit, since=since)
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
    *, segment_id: int, context: PlanContext | None = None, on_rows: Callable[[int], None] | None = None
) -> Segment:
    """Run one segment from its checkpoint to its end. Idempotent: a finished segment returns at once."""
    segment = Segment.objects.select_related("run__plan").get(pk=segment_id)
    if segment.done or segment.run.status == RunStatus.PAUSED:
        return segment  # a paused run's redelivered or queued segments wait for resume
    run = segment.run
    Segment.objects.filter(pk=segment.pk).update(attempts=F("attempts") + 1)
    MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
    if context is None:
        with plan_context(plan=run.plan) as own:
            return _segment_loop(segment, run, own, on_rows)
    return _segment_loop(segment, run, context, on_rows)


def _segment_loop(segment: Segment, run: MigrationRun, context: PlanContext, on_rows) -> Segment:
    entity = context.entity(segment.entity)
    relation = context.source.relation(entity)
    chunk_size = settings.LIZZY_MIGRATION_CHUNK_SIZE
    remaining = None
    if run.row_limit:
        remaining = max(run.row_limit - segment.rows_read, 0)
    after = segment.last_key
    key_names = (entity.partition_key, *([entity.sort_key] if entity.sort_key else []))
    if remaining == 0:
        Segment.objects.filter(pk=segment.pk).update(done=True)
        segment.refresh_from_db()
        return segment
    for rows in context.source.pages(
        relation,
        after=after,
        upper=segment.upper_key,
        page_size=min(chunk_size, remaining) if remaining else chunk_size,
        since=run.since,
    ):
        if remaining is not None:
            rows = rows[:remaining]
        items = [entity.transform(row) for row in rows]
        before = consumed_capacity()
        result = dynamodb_batch_write(
            table=entity.target_table,
            items=items,
            key_names=key_names,
            on_duplicate="skip",
            # The page is checkpointed only after all of its chunks are written, whatever their order.
            concurrency=settings.LIZZY_MIGRATION_WRITE_CONCURRENCY,
        )
        units = _write_units(before, entity.target_table)
        last_key = context.source.key_of(rows[-1], relation)
        with transaction.atomic():
            Segment.objects.filter(pk=segment.pk).update(
                last_key=last_key,
                rows_read=F("rows_read") + len(rows),
                items_written=F("items_written") + result.written,
                items_skipped=F("items_skipped") + len(result.duplicates),
            )
            MigrationRun.objects.filter(pk=run.pk).update(
                rows_read=F("rows_read") + len(rows),
                items_written=F("items_written") + result.written,
                items_skipped=F("items_skipped") + len(result.duplicates),
                bytes_written=F("bytes_written") + result.bytes,
                write_units=F("write_units") + units,
                unprocessed_retries=F("unprocessed_retries") + result.unprocessed_retries,
                throttle_retries=F("throttle_retries") + result.throttle_retries,
            )
        if result.duplicates:
            _record_duplicates(run.pk, entity, result.duplicates)
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


_duplicates_lock = threading.Lock()


def _record_duplicates(run_id: int, entity: EntityMapping, duplicates: list[dict[str, Any]]) -> None:
    """Two rows gave one key in a batch: DynamoDB would refuse the batch, so the later row is reported."""
    with _duplicates_lock, transaction.atomic():
        run = MigrationRun.objects.select_for_update().get(pk=run_id)
        sample = list(run.duplicate_keys)
        for key in duplicates:
            if len(sample) >= DUPLICATE_SAMPLE_SIZE:
                break
            sample.append({"entity": entity.name, "key": {k: str(v) for k, v in key.items()}})
        run.duplicate_keys = sample
        run.save(update_fields=["duplicate_keys"])
    logger.warning("run %s: %d duplicate key(s) in %s skipped", run_id, len(duplicates), entity.name)


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
    # SQLite serialises writers (and an in-memory test database cannot be shared between threads):
    # with it, segments run one after another; parallelism then comes from Celery workers.
    if connection.vendor == "sqlite":
        workers = 1
    try:
        if workers <= 1 or len(pending) <= 1:
            for segment_id in pending:
                segment_backfill(segment_id=segment_id, context=context, on_rows=on_rows)
        else:
            lock = threading.Lock()

            def work(segment_id: int) -> None:
                # Each thread gets its own source connection: DB-API connections are not shared.
                try:
                    with plan_context(plan=run.plan) as own:
                        segment_backfill(segment_id=segment_id, context=own, on_rows=_locked(on_rows, lock))
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


def run_resume(*, run: MigrationRun) -> MigrationRun:
    """Back to pending and hand the unfinished segments to Celery again; they continue from their checkpoints."""
    from migration_app.tasks import run_dispatch

    if not MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PAUSED).update(status=RunStatus.PENDING):
        run.refresh_from_db()
        raise PreconditionFailed(ERR_NOT_PAUSED.format(run=run.pk, status=run.status))
    run.refresh_from_db()
    run_dispatch(run=run)
    run.refresh_from_db()
    return run


def plan_backfill_start(*, plan: MigrationPlan, segments: int = 1, actor: Any = None) -> MigrationRun:
    """What ``migrate_to_dynamodb --async`` does, as one call for the ops console.

    Creates missing target tables, moves a plan still in setup to backfill (guarded, backed up), creates
    a backfill run (a catch-up run in the parallel phase) and dispatches its segments to Celery.
    """
    from migration_app.models import Phase
    from migration_app.services.phases import plan_advance
    from migration_app.tasks import run_dispatch

    if plan.phase not in (Phase.SETUP, Phase.BACKFILL, Phase.PARALLEL):
        raise PreconditionFailed(ERR_START_PHASE.format(plan=plan.name, phase=plan.phase))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        if plan.phase == Phase.SETUP:
            plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor=actor, reason="backfill started from the console")
        kind = RunKind.CATCH_UP if plan.phase == Phase.PARALLEL else RunKind.BACKFILL
        since = catch_up_since(plan=plan) if kind == RunKind.CATCH_UP else None
        run = run_create(context=context, kind=kind, segments=segments, since=since)
    run_dispatch(run=run)
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
