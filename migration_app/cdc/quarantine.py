"""Bad changes → the quarantine the backfill uses (``QuarantinedRow``), and the plan's allowance.

The worker calls ``changes_quarantine`` after a batch's writes and before it confirms the slot past them.
A worker killed in between decodes the same changes again: each is one row per (stream, commit position,
place in its transaction, rule), so the second insert is ignored and the count stays right. Past the
plan's ``max_bad_rows`` (counted over the stream, as a backfill counts over its run) change capture stops
with the change that went over, and stays stopped at it: the slot is not confirmed past it. Raising the
plan's ``max_bad_rows`` and starting the worker again lets it go on (the quarantined rows are not added twice).
The allowance counts distinct source rows: every bad change is recorded, but a row that stays bad through
many updates counts once, as it would in a backfill.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.db import transaction

from migration_app.cdc.apply import ERR_ROW, BadChange, CdcApplyError
from migration_app.cdc.pgoutput import lsn_to_text
from migration_app.models import CdcStream, MigrationPlan, QuarantinedRow, nul_escaped

logger = logging.getLogger(__name__)

# What the allowance counts: source rows, not changes (a bad row updated again is recorded again, counted once).
ROW_IDENTITY = ("source_table", "rule", "source_key")

ERR_TOO_MANY_BAD_CHANGES = (
    "{count} source row(s) quarantined by change capture ({changes} change(s)), more than the plan's "
    "max_bad_rows ({limit}); change capture stopped, confirmed up to {confirmed} (not past this batch). "
    "The change that went over: {row}"
)


def _label(entity) -> str:
    return f"{entity.schema}.{entity.table}"


def _crossing(rows, limit: int) -> QuarantinedRow:
    """The first record of the source row that went over the allowance (the limit+1-th, in quarantine order)."""
    seen = set()
    for row in rows.order_by("id").iterator():
        identity = (row.source_table, row.rule, json.dumps(row.source_key, sort_keys=True))
        if identity not in seen:
            seen.add(identity)
            if len(seen) > limit:
                return row
    raise AssertionError("called only when the stream has more distinct rows than the limit")  # pragma: no cover


def cdc_quarantined_rows(*, stream: CdcStream) -> int:
    """Distinct source rows the stream quarantined: what the plan's ``max_bad_rows`` is compared with."""
    rows = QuarantinedRow.objects.filter(stream=stream).order_by()  # no ordering column in the DISTINCT
    return rows.values_list(*ROW_IDENTITY).distinct().count()


def row_text(*, plan: MigrationPlan, row: QuarantinedRow) -> str:
    return ERR_ROW.format(
        plan=plan.name,
        table=row.source_table,
        rule=row.rule,
        key=row.source_key,
        kind=row.change,
        lsn=row.commit_lsn,
        reason=row.reason,
    )


def changes_quarantine(
    *, stream: CdcStream, plan: MigrationPlan, bad: list[BadChange], position_text: Callable[[int], str] = lsn_to_text
) -> int:
    """Record the batch's bad changes (each once, ever); raise CdcApplyError past the allowance.

    Returns how many rows were new to the quarantine. ``position_text`` writes a commit position as the
    source does (PostgreSQL's LSN, the binlog's ``file:position``).
    """
    bad = sorted(bad, key=lambda entry: entry.change.order)  # commit order: "the one that went over" is stable
    rows = QuarantinedRow.objects.filter(stream=stream)
    with transaction.atomic():
        before = rows.count()
        QuarantinedRow.objects.bulk_create(
            [
                QuarantinedRow(
                    plan=plan,
                    stream=stream,
                    rule=entry.change.entity.rule,
                    source_table=_label(entry.change.entity),
                    target_table=entry.change.entity.target_table,
                    source_key=nul_escaped(entry.change.source_key),
                    reason=nul_escaped(entry.reason),
                    row=nul_escaped(entry.change.row_json()),
                    change=entry.change.kind,
                    commit_lsn=position_text(entry.change.commit_lsn),
                    change_position=entry.change.position,
                )
                for entry in bad
            ],
            ignore_conflicts=True,  # decoded again after a kill: already there
        )
        count = rows.count()
    for row in rows.order_by("id")[before:count]:
        # no source key or row values in the log (they may be personal data): the quarantine has them
        logger.warning(
            "plan %s: change capture quarantined row #%s (table %s, rule %s, %s committed at %s)",
            plan.name,
            row.pk,
            row.source_table,
            row.rule,
            row.change,
            row.commit_lsn,
        )
    plan.refresh_from_db(fields=["max_bad_rows"])
    limit = plan.max_bad_rows
    distinct = cdc_quarantined_rows(stream=stream)
    if distinct > limit:
        raise CdcApplyError(
            ERR_TOO_MANY_BAD_CHANGES.format(
                count=distinct,
                changes=count,
                limit=limit,
                confirmed=stream.confirmed_lsn or "-",
                row=row_text(plan=plan, row=_crossing(rows, limit)),
            )
        )
    return count - before
