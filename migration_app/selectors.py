"""Reads: plans and runs for the admin and commands, and seed 002's access patterns on the Serenya table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from lizzy.dynamodb import dynamodb_describe_table, dynamodb_query
from lizzy.errors import ApplicationError
from lizzy.scrub import secrets_scrub
from migration_app.models import (
    PHASE_ORDER,
    MigrationPlan,
    MigrationRun,
    Phase,
    QuarantinedRow,
    RunStatus,
    Segment,
    ValidationReport,
)
from migration_app.services.mapping import target_name
from migration_app.services.phases import ERR_TABLES_GONE, phase_guard, tables_created_after

SERENYA_TABLE = "serenya-{env}"


def plan_list() -> QuerySet[MigrationPlan]:
    return MigrationPlan.objects.all()


def run_latest(*, plan: MigrationPlan) -> MigrationRun | None:
    return plan.runs.order_by("-started_at", "-id").first()


def validation_latest(*, plan: MigrationPlan) -> ValidationReport | None:
    return plan.validations.order_by("-created_at", "-id").first()


TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC; the console's one format (lizzy/formats/en/formats.py)


# --- Progress for the ops console (list bars, detail page, the JSON the page polls) --------------


def percent(done: int, expected: int | None, *, finished: bool) -> int | None:
    """Whole percent of ``expected``; 100 once finished (a source that shrank still ends full), None unknown."""
    if finished:
        return 100
    if not expected:
        return None if expected is None else 0
    return min(99, done * 100 // expected)


def table_progress(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments summarized per source table (entity): what a person reads first; segments on demand."""
    tables: dict[str, dict[str, Any]] = {}
    for segment in segments:
        entry = tables.setdefault(
            segment["entity"],
            {"entity": segment["entity"], "segments": [], "rows_read": 0, "rows_expected": 0, "done": 0},
        )
        entry["segments"].append(segment)
        entry["rows_read"] += segment["rows_read"]
        entry["done"] += int(segment["done"])
        if entry["rows_expected"] is not None:
            entry["rows_expected"] = (
                None if segment["rows_expected"] is None else entry["rows_expected"] + segment["rows_expected"]
            )
    for entry in tables.values():
        finished = entry["done"] == len(entry["segments"])
        entry["percent"] = percent(entry["rows_read"], entry["rows_expected"], finished=finished)
    return list(tables.values())


def segment_progress(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.pk,
        "label": f"{segment.entity}[{segment.index}]",
        "entity": segment.entity,
        "index": segment.index,
        "rows_read": segment.rows_read,
        "rows_expected": segment.rows_expected,
        "done": segment.done,
        "percent": percent(segment.rows_read, segment.rows_expected, finished=segment.done),
    }


def run_progress(*, run: MigrationRun) -> dict[str, Any]:
    """Rows read of rows expected (per segment and in total), items/s, ETA at the current rate."""
    segments = list(run.segments.all())
    segment_list = [segment_progress(segment) for segment in segments]
    known = all(segment.rows_expected is not None for segment in segments)
    expected = sum(segment.rows_expected or 0 for segment in segments) if known else None
    finished = run.status == RunStatus.SUCCEEDED
    # Live totals are the units' (the run row is summed only when a unit ends: no hot row per page).
    rows_read = sum(segment.rows_read for segment in segments)
    items_written = sum(segment.items_written for segment in segments)
    elapsed = max(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 1e-6)
    rows_per_second = rows_read / elapsed
    eta = None
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING) and expected is not None and rows_per_second > 0:
        eta = max(expected - rows_read, 0) / rows_per_second
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "rows_read": rows_read,
        "rows_expected": expected,
        "items_written": items_written,
        "items_skipped": sum(segment.items_skipped for segment in segments),
        "items_per_second": round(items_written / elapsed, 1),
        "eta_seconds": None if eta is None else round(eta),
        "percent": percent(rows_read, expected, finished=finished),
        "segments": segment_list,
        "tables": table_progress(segment_list),
        "rows_quarantined": run.rows_quarantined,
        "last_error": secrets_scrub(run.last_error),  # shown in the admin: may quote what a source read
    }


def plan_next_phase(*, plan: MigrationPlan) -> str | None:
    index = PHASE_ORDER.index(plan.phase)
    return PHASE_ORDER[index + 1] if index + 1 < len(PHASE_ORDER) else None


ERR_TABLES_UNKNOWN = "Could not check the target tables ({error})."


def plan_tables_missing(*, plan: MigrationPlan) -> list[str] | None:
    """Target tables a plan past setup wrote to and that no longer exist; None when DynamoDB cannot say.

    Before the backfill the tables are not there yet by design (the backfill creates them): nothing is missing.
    """
    if plan.phase == Phase.SETUP:
        return []
    try:
        return [table for table in plan.target_tables if dynamodb_describe_table(table=table) is None]
    except ApplicationError:
        return None


def plan_tables_problem(*, plan: MigrationPlan) -> str | None:
    """What the console says instead of "succeeded · clean" when the target tables are gone."""
    missing = plan_tables_missing(plan=plan)
    if missing is None:
        return ERR_TABLES_UNKNOWN.format(error="DynamoDB did not answer")
    if missing:
        return ERR_TABLES_GONE.format(tables=", ".join(missing), plan=plan.name)
    return None


def plan_advance_refusal(*, plan: MigrationPlan, tables_problem: str | None = None) -> str | None:
    """Why the next phase is refused right now (the guard's own message), or None when it is allowed."""
    next_phase = plan_next_phase(plan=plan)
    if next_phase is None:
        return f"{plan.phase} is the last phase."
    if tables_problem:
        return tables_problem
    try:
        phase_guard(plan=plan, to_phase=next_phase)
    except ApplicationError as exc:
        return exc.message
    return None


def _tables_recreated_since(*, plan: MigrationPlan, when: Any) -> bool:
    if plan.phase == Phase.SETUP:
        return False
    try:
        descriptions = {table: dynamodb_describe_table(table=table) for table in plan.target_tables}
    except ApplicationError:
        return True  # cannot say that the validated tables are still the ones there
    return bool(tables_created_after(descriptions=descriptions, when=when))


def plan_progress(*, plan: MigrationPlan) -> dict[str, Any]:
    """Everything the console shows of a plan that changes while one looks at it."""
    run = run_latest(plan=plan)
    report = validation_latest(plan=plan)
    unfinished = run is not None and run.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED)
    tables_problem = plan_tables_problem(plan=plan)
    return {
        "plan": plan.name,
        "phase": plan.phase,
        "phase_label": plan.get_phase_display(),
        "next_phase": plan_next_phase(plan=plan),
        "tables_problem": tables_problem,
        "advance_refused": plan_advance_refusal(plan=plan, tables_problem=tables_problem),
        "run": None if run is None else run_progress(run=run),
        "validation": None
        if report is None
        else {
            **report.summary(),
            "clean": report.clean,
            "mode": report.mode,
            "quick": report.quick,
            "at": report.created_at.isoformat(),
            "at_display": report.created_at.strftime(TIMESTAMP_FORMAT),
            "id": report.pk,
            # the tables it checked are gone, or were made anew after it: "clean" no longer holds
            "stale": bool(tables_problem) or _tables_recreated_since(plan=plan, when=report.created_at),
        },
        "can_start": plan.phase in ("setup", "backfill", "parallel") and not unfinished,
        "can_pause": run is not None and run.status in (RunStatus.PENDING, RunStatus.RUNNING),
        "can_resume": run is not None and run.status == RunStatus.PAUSED,
        "can_roll_back": plan.transitions.filter(rollback=False, to_phase=plan.phase).exists(),
    }


def quarantine_lines(*, rows: QuerySet[QuarantinedRow]) -> Iterator[str]:
    """Quarantined rows as JSON Lines (one object per row: plan, run, rule, tables, source key, reason, row).

    A row change capture set aside has no run: ``stream`` and the change (``change``, ``commit_lsn``) instead.
    """
    for row in rows.select_related("plan").order_by("id").iterator():
        yield (
            json.dumps(
                {
                    "plan": row.plan.name,
                    "run": row.run_id,
                    "stream": row.stream_id,
                    "change": row.change or None,
                    "commit_lsn": row.commit_lsn or None,
                    "rule": row.rule,
                    "source_table": row.source_table,
                    "target_table": row.target_table,
                    "source_key": row.source_key,
                    "reason": row.reason,
                    "row": row.row,
                    "at": row.created_at.isoformat(),
                },
                ensure_ascii=False,
                sort_keys=True,
            )
            + "\n"
        )


def serenya_user_find_by_external_id(*, auth_provider: str, external_id: str) -> dict[str, Any] | None:
    """Sign-in: the user for a provider's id, through GSI2 (seed 002, DynamoUserService.findByExternalId)."""
    page = dynamodb_query(
        table=target_name(SERENYA_TABLE),
        index="GSI2",
        key_condition="GSI2PK = :pk",
        values={":pk": f"USER_EXTERNAL#{auth_provider}#{external_id}"},
        limit=1,
    )
    return page.items[0].get("data") if page.items else None


def serenya_subscription_latest(*, user_id: str) -> dict[str, Any] | None:
    """The newest subscription: SK descending. Correct only with time-ordered ids (see docs/MIGRATIONS.md)."""
    page = dynamodb_query(
        table=target_name(SERENYA_TABLE),
        key_condition="PK = :pk AND begins_with(SK, :sk)",
        values={":pk": f"USER#{user_id}", ":sk": "SUBSCRIPTION#"},
        forward=False,
        limit=1,
        consistent=True,
    )
    return page.items[0].get("data") if page.items else None


def serenya_jobs_by_status(*, status: str, limit: int = 50) -> list[dict[str, Any]]:
    """Jobs in one status, newest first (GSI1: JOB_STATUS#status / JOB#created_at#id)."""
    page = dynamodb_query(
        table=target_name(SERENYA_TABLE),
        index="GSI1",
        key_condition="GSI1PK = :pk",
        values={":pk": f"JOB_STATUS#{status}"},
        forward=False,
        limit=limit,
    )
    return page.items
