"""A plan's change-capture stream: created before the backfill reads, dropped by rollback and cleanup.

Consistency with the backfill is *capture, then reconcile*: the slot is created (and starts keeping
every committed change) when the plan enters backfill, before the backfill reads a row. The worker
starts applying only once a backfill that started after the slot succeeded, and never while a run is
in flight. It then replays everything since the slot's start in commit order: a change the backfill had
already seen writes the row's state again (harmless), a later change overwrites it, so every item ends
at the row's latest state; nothing committed after the slot's start can be missed.

Order matters on the source: REPLICA IDENTITY FULL and the publication exist before the slot, so the
slot's first change is already decoded with both.

A MySQL/MariaDB stream has no slot: its start is the server's binlog end noted at the same moment, the
binlog keeps every commit after it (for as long as the server's retention allows: binlog.py), and its
rows only are dropped.
"""

from __future__ import annotations

import logging
import re
import uuid

import psycopg
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as django_connection
from django.utils import timezone

from lizzy.errors import PreconditionFailed
from migration_app.cdc import binlog, slots
from migration_app.cdc.binlog import BinlogCapture
from migration_app.cdc.capture import capture_kind
from migration_app.cdc.pgoutput import lsn_to_text
from migration_app.models import CdcStatus, CdcStream, MigrationPlan, MigrationRun, RunKind
from migration_app.services.plans import plan_context

logger = logging.getLogger(__name__)

ERR_NOT_CAPTURABLE = (
    "Plan {plan} uses change data capture, which needs a postgres:// or mysql:// (MySQL/MariaDB) source "
    "(got {scheme}); other sources keep the updated_at catch-up."
)
ERR_QUERY_ENTITY = (
    "Plan {plan}: rule {rule} reads a source-query; change data capture follows tables only "
    "(map the table, or turn cdc off for this plan)."
)
ERR_NO_KEY = (
    "Plan {plan}: table {table} has no primary key; change data capture needs one to find a changed row's item."
)
ERR_CATCH_UP = (
    "Plan {plan} uses change data capture: its changes are applied by the CDC worker (migration_cdc), "
    "and an updated_at catch-up running beside it could write a row's older state after a newer one."
)
ERR_RUN_WHILE_APPLYING = (
    "Plan {plan}: the CDC worker has started applying changes (stream {slot}); a run now could write rows "
    "older than what it applied. Roll the plan back to setup (drops the slot) to start over."
)
ERR_IN_TRANSACTION = (
    "Plan {plan}: a replication slot is created only once every transaction on the source's server has ended; "
    "this call is inside a database transaction, which could be one of them. Call it outside transaction.atomic."
)
ERR_SLOT_CREATE = (
    "Plan {plan}: the replication slot was not created within LIZZY_CDC_SLOT_CREATE_TIMEOUT_SECONDS ({seconds:g} s): "
    "PostgreSQL waits for every transaction in progress on the server to end (see pg_stat_activity). {problem}"
)
_NAME = re.compile(r"[^a-z0-9_]")


def _names(plan: MigrationPlan) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    base = _NAME.sub("_", f"{settings.LIZZY_CDC_SLOT_PREFIX}_{plan.pk}_{suffix}".lower())[:55]
    return base, f"{base}_pub"


def cdc_stream_active(*, plan: MigrationPlan) -> CdcStream | None:
    return CdcStream.objects.filter(plan=plan, status=CdcStatus.ACTIVE).first()


def cdc_tables(*, plan: MigrationPlan) -> list[str]:
    """The plan's source tables (schema.table), after checking every entity can be captured."""
    if capture_kind(plan.source_url) is None:
        raise PreconditionFailed(ERR_NOT_CAPTURABLE.format(plan=plan.name, scheme=plan.source_url.split(":", 1)[0]))
    tables: list[str] = []
    with plan_context(plan=plan) as context:
        for entity in context.entities:
            if entity.query or not entity.table:
                raise PreconditionFailed(ERR_QUERY_ENTITY.format(plan=plan.name, rule=entity.rule))
            if not entity.source_key:
                raise PreconditionFailed(ERR_NO_KEY.format(plan=plan.name, table=f"{entity.schema}.{entity.table}"))
            name = f"{entity.schema}.{entity.table}"
            if name not in tables:
                tables.append(name)
    return tables


def cdc_stream_create(*, plan: MigrationPlan) -> CdcStream:
    """Publication and slot on the source, recorded; an active stream of the plan is returned as it is."""
    existing = cdc_stream_active(plan=plan)
    if existing is not None:
        return existing
    if django_connection.in_atomic_block:
        raise PreconditionFailed(ERR_IN_TRANSACTION.format(plan=plan.name))
    tables = cdc_tables(plan=plan)
    slot_name, publication = _names(plan)
    if capture_kind(plan.source_url) == BinlogCapture.kind:
        return _binlog_stream_create(plan=plan, tables=tables, name=slot_name)
    timeout = settings.LIZZY_CDC_SLOT_CREATE_TIMEOUT_SECONDS
    connection = slots.source_connect(plan.source_url)
    try:
        slots.replica_identity_full(connection, tables)
        slots.publication_create(connection, publication, tables)
        try:
            start = slots.slot_create(connection, slot_name, timeout_seconds=timeout)
        except psycopg.errors.QueryCanceled as exc:
            slots.publication_drop(connection, publication)
            raise PreconditionFailed(
                ERR_SLOT_CREATE.format(plan=plan.name, seconds=timeout, problem=str(exc).strip())
            ) from exc
        except Exception:
            slots.publication_drop(connection, publication)
            raise
        try:
            with transaction.atomic():
                stream = CdcStream.objects.create(
                    plan=plan,
                    slot_name=slot_name,
                    publication_name=publication,
                    tables=tables,
                    start_lsn=lsn_to_text(start),
                    confirmed_lsn=lsn_to_text(start),
                )
        except IntegrityError:
            # Another caller created the plan's stream meanwhile: ours is not recorded, so it must not stay.
            slots.slot_drop(connection, slot_name)
            slots.publication_drop(connection, publication)
            return cdc_stream_active(plan=plan)
    finally:
        slots.close_quietly(connection)
    logger.info("plan %s: CDC slot %s created at %s", plan.name, slot_name, stream.start_lsn)
    return stream


def _binlog_stream_create(*, plan: MigrationPlan, tables: list[str], name: str) -> CdcStream:
    """MySQL/MariaDB: nothing to create on the source. The server's binlog end is noted before the backfill
    reads (every commit from there on is captured); binlog.py says what the server must keep."""
    start = binlog.stream_start(url=plan.source_url)
    try:
        with transaction.atomic():
            stream = CdcStream.objects.create(
                plan=plan, slot_name=name, publication_name="", tables=tables, start_lsn=start, confirmed_lsn=start
            )
    except IntegrityError:
        return cdc_stream_active(plan=plan)  # another caller recorded the plan's stream meanwhile
    logger.info("plan %s: CDC binlog stream %s starts at %s", plan.name, name, start)
    return stream


def cdc_stream_drop(*, plan: MigrationPlan, reason: str) -> list[CdcStream]:
    """Drop every active stream's slot and publication on the source (a binlog stream has none), then mark
    it dropped: a worker still running stops at its next step."""
    dropped = []
    for stream in CdcStream.objects.filter(plan=plan, status=CdcStatus.ACTIVE):
        if capture_kind(plan.source_url) == slots.PgCapture.kind:
            connection = slots.source_connect(plan.source_url)
            try:
                slots.slot_drop(connection, stream.slot_name)
                slots.publication_drop(connection, stream.publication_name)
            finally:
                slots.close_quietly(connection)
        stream.status, stream.dropped_at = CdcStatus.DROPPED, timezone.now()
        stream.last_error = (stream.last_error + f"\ndropped: {reason}").strip()[:4000]
        stream.save(update_fields=["status", "dropped_at", "last_error"])
        logger.info("plan %s: CDC slot %s dropped (%s)", plan.name, stream.slot_name, reason)
        dropped.append(stream)
    return dropped


def cdc_guard_run(*, run: MigrationRun) -> None:
    """Called by run_create right after it recorded a run: refuse runs that would race the CDC worker.

    The worker marks the stream ``applying`` before it checks for runs in flight, and this check runs
    after the run is recorded, so of a worker and a run starting at once at least one sees the other.
    """
    plan = run.plan
    if not plan.cdc:
        return
    stream = cdc_stream_active(plan=plan)
    message = None
    if run.kind == RunKind.CATCH_UP:
        message = ERR_CATCH_UP.format(plan=plan.name)
    elif stream is not None and stream.applying_since is not None:
        message = ERR_RUN_WHILE_APPLYING.format(plan=plan.name, slot=stream.slot_name)
    if message:
        run.delete()
        raise PreconditionFailed(message)
