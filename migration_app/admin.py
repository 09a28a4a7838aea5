"""The migrations admin: plans with phase actions, runs with progress, validations, backups.

A plan's change page is also its console: progress bars per segment and in total, items/s and ETA,
the latest validation with field diffs, backups, and buttons (start backfill, pause, resume,
validate, advance phase, roll back) that call the engine's services. The page polls a JSON endpoint
and updates in place. Looking needs the view permission; the buttons need ``change_migrationplan``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from lizzy.errors import ApplicationError
from lizzy.scrub import secrets_scrub, url_display
from migration_app.cdc.binlog import BinlogCapture
from migration_app.cdc.capture import capture_kind
from migration_app.cdc.quarantine import cdc_quarantined_rows
from migration_app.cdc.streams import cdc_stream_active
from migration_app.models import (
    PHASE_ORDER,
    Backup,
    MigrationPlan,
    MigrationRun,
    PhaseTransition,
    QuarantinedRow,
    Segment,
    ValidationReport,
)
from migration_app.selectors import (
    plan_next_phase,
    plan_progress,
    plan_tables_problem,
    quarantine_lines,
    run_latest,
    run_progress,
)
from migration_app.services.backups import (
    backup_choose,
    backup_choose_cached,
    backup_delete,
    backup_table,
    backup_text,
)
from migration_app.services.dispatch import plan_backfill_start, run_resume
from migration_app.services.phases import plan_advance, plan_backup_choices, plan_rollback
from migration_app.services.runs import run_pause
from migration_app.tasks import catch_up_task, validate_task

logger = logging.getLogger(__name__)

POLL_MS = 2000  # how often an open plan page asks for progress
RUNS_SHOWN = 10
ERR_NO_RUN = "Plan {plan} has no run to {verb}."
ERR_REASON = "Say why you roll back (it is recorded with your name)."
ERR_UNKNOWN_ACTION = "Unknown console action {action!r}."
NOT_ESTIMATED_TEXT = (
    "{table}: not estimated in the last {seconds} s, or the table does not exist yet (press Estimate backups: a "
    "DescribeTable and a 200-item Scan per table)."
)


def approximate_text(count: int | None) -> str:
    return "item count unknown" if count is None else f"about {count} items"


def restored_text(restored: list[dict[str, Any]]) -> str:
    """What a rollback's restores proved, table by table: verified (exact) or what weaker check was made."""
    parts = []
    for result in restored:
        if result["verified"]:
            parts.append(f"{result['table']}: {result['item_count']} items, verified by {result['verified_by']}")
        else:
            parts.append(
                f"{result['table']}: {result['item_count']} items, NOT verified (checksum not taken at backup "
                f"time; {result['verified_by']}: {approximate_text(result.get('approximate_item_count'))})"
            )
    return "; ".join(parts) or "no backups to restore"


def backup_plan_lines(plan: MigrationPlan) -> list[str]:
    """What the next phase change would back up, shown before anyone presses Advance, from the cached estimates:
    a page load never calls DynamoDB (an estimate is a DescribeTable and a 200-item Scan per table). *Estimate
    backups*, any backup and any phase change refresh them."""
    lines = []
    for table in plan.target_tables:
        choice = backup_choose_cached(table=table)
        if choice is None:
            lines.append(NOT_ESTIMATED_TEXT.format(table=table, seconds=settings.LIZZY_BACKUP_ESTIMATE_CACHE_SECONDS))
        else:
            lines.append(f"{choice.text()} [{choice.estimate.age_text()}]")
    return lines


def duration_display(seconds: float | None) -> str:
    """``1h 02m``, ``4m 05s``, ``12s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def report_diffs(report: ValidationReport | None) -> list[dict[str, Any]]:
    """The report's sampled differences with each field's two values as JSON text, for the diff table."""
    if report is None:
        return []
    return [
        {
            **sample,
            "fields": [
                {
                    "field": diff["field"],
                    "expected": json.dumps(diff["expected"], sort_keys=True, ensure_ascii=False),
                    "actual": json.dumps(diff["actual"], sort_keys=True, ensure_ascii=False),
                }
                for diff in sample.get("fields", [])
            ],
        }
        for sample in (report.samples or {}).get("different", [])
    ]


def progress_html(progress: dict[str, Any]) -> str:
    """A ``<progress>`` for the run's total, one line per source table, and each table's segments on demand
    (a ``<details>``: a plan of 41 segments reads as its few tables, not 41 unlabeled bars)."""

    def bar(label: str, value: int, expected: int | None, pct: int | None, css: str) -> str:
        if expected is None:
            return format_html('<progress class="{}" title="{}"></progress>', css, label)
        maximum = max(expected, 1)
        current = maximum if pct == 100 else min(value, maximum)
        return format_html(
            '<progress class="{}" value="{}" max="{}" title="{}: {} %"></progress>', css, current, maximum, label, pct
        )

    def pct_text(value: int | None) -> str:
        return "?" if value is None else f"{value} %"

    def table_html(table: dict[str, Any]) -> str:
        segments = format_html_join(
            "",
            '<li>{} {} <span class="quiet">{} rows</span></li>',
            (
                (
                    bar(seg["label"], seg["rows_read"], seg["rows_expected"], seg["percent"], "run-segment"),
                    seg["label"],
                    f"{seg['rows_read']:,}",
                )
                for seg in table["segments"]
            ),
        )
        count = len(table["segments"])
        return format_html(
            '<details class="run-table" data-entity="{}"><summary>{} {} {} <span class="quiet">({}/{} segment{} done)'
            '</span></summary><ul class="run-segments">{}</ul></details>',
            table["entity"],
            table["entity"],
            bar(table["entity"], table["rows_read"], table["rows_expected"], table["percent"], "run-table-bar"),
            pct_text(table["percent"]),
            table["done"],
            count,
            "" if count == 1 else "s",
            segments,
        )

    total = bar("total", progress["rows_read"], progress["rows_expected"], progress["percent"], "run-total")
    tables = format_html_join("", "{}", ((table_html(table),) for table in progress.get("tables", [])))
    return format_html("{} {}{}", total, pct_text(progress["percent"]), tables)


class SegmentInline(admin.TabularInline):
    model = Segment
    extra = 0
    can_delete = False
    readonly_fields = [
        "entity",
        "index",
        "lower_key",
        "upper_key",
        "last_key",
        "rows_read",
        "items_written",
        "items_skipped",
        "done",
        "attempts",
        "retries",
        "last_error_display",
        "lease_owner",
        "lease_expires_at",
        "fence",
        "updated_at",
    ]
    # a unit's error may quote what a source or a driver said (any exception, not only a SourceError, which is
    # scrubbed when raised): shown scrubbed like the run's, to everyone who may look at the run
    exclude = ["last_error"]

    @admin.display(description="last error")
    def last_error_display(self, segment: Segment) -> str:
        return secrets_scrub(segment.last_error)


@admin.register(MigrationRun)
class MigrationRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "plan",
        "kind",
        "status",
        "progress",
        "rows_read",
        "items_written",
        "items_skipped",
        "items_per_second_display",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "plan"]
    # last_error may quote what a source read: shown scrubbed of secret values (lizzy.scrub).
    readonly_fields = [field.name for field in MigrationRun._meta.fields if field.name != "last_error"] + [
        "last_error_display"
    ]
    exclude = ["last_error"]
    inlines = [SegmentInline]
    actions = ["resume_runs"]

    def has_resume_permission(self, request: HttpRequest) -> bool:
        """Resuming is running the console (operators: ``change_migrationplan``), not editing a run."""
        return request.user.has_perm("migration_app.change_migrationplan")

    @admin.action(description="Resume from checkpoints (failed, paused or cancelled runs)", permissions=["resume"])
    def resume_runs(self, request: HttpRequest, queryset) -> None:
        resumed = 0
        for run in queryset.select_related("plan"):
            try:
                run_resume(run=run)
                resumed += 1
            except ApplicationError as exc:
                self.message_user(request, f"Run #{run.pk}: {secrets_scrub(exc.message)}", messages.ERROR)
        if resumed:
            message = ngettext(
                "%d run resumed from its checkpoints.", "%d runs resumed from their checkpoints.", resumed
            )
            self.message_user(request, message % resumed, messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a run is started from its plan (console button or migrate_to_dynamodb), never typed in

    @admin.display(description="last error")
    def last_error_display(self, run: MigrationRun) -> str:
        return secrets_scrub(run.last_error)

    @admin.display(description="segments")
    def progress(self, run: MigrationRun):
        total = run.segments.count()
        done = run.segments.filter(done=True).count()
        return format_html('<progress value="{}" max="{}"></progress> {}/{}', done, max(total, 1), done, total)

    @admin.display(description="items/s")
    def items_per_second_display(self, run: MigrationRun) -> str:
        return f"{run.items_per_second:.1f}"


@admin.register(MigrationPlan)
class MigrationPlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "phase_badge",
        "progress_bars",
        "items_per_second_display",
        "eta_display",
        "latest_validation",
        "updated_at",
    ]
    list_filter = ["phase"]
    readonly_fields = ["phase", "phase_changed_at", "created_tables", "created_at", "updated_at", "cdc_stream"]
    # What a plan reads and writes (source URL, mapping with its SQL queries, target tables, whether changes are
    # captured from the source's log) is configuration:
    # only superusers edit it (each change is in the admin log with the fields changed), others see it with
    # the URL's password masked. docs/OPERATIONS.md, "Permission model".
    CONFIGURATION_FIELDS = ("name", "source_url", "mapping", "target_tables", "cdc")
    actions = ["advance_phase", "rollback_phase", "validate_now", "catch_up_now", "backup_now"]
    change_form_template = "admin/migration_app/migrationplan/change_form.html"

    class Media:
        css = {"all": ["migration_app/console.css"]}

    # --- columns ---------------------------------------------------------------------------------

    @admin.display(description="change capture")
    def cdc_stream(self, plan: MigrationPlan) -> str:
        """The CDC stream's slot, position and lag (docs/MIGRATIONS.md, "Change data capture")."""
        if not plan.cdc:
            return "off: updated_at catch-ups"
        stream = cdc_stream_active(plan=plan)
        if stream is None:
            return "on; no slot yet (created when the plan enters backfill)"
        lag = stream.lag_seconds
        binlog = capture_kind(plan.source_url) == BinlogCapture.kind
        return format_html(
            '<span class="cdc-stream" data-lag-seconds="{}">{} {}: applied up to {}; lag {} and {} bytes of {}; '
            "last read {}; {} row(s) quarantined (of {} allowed){}{}</span>",
            "" if lag is None else f"{lag:.1f}",
            "binlog stream" if binlog else "slot",
            stream.slot_name,
            stream.confirmed_lsn,
            "never caught up" if lag is None else f"{lag:.1f} s",
            stream.lag_bytes,
            "binlog" if binlog else "WAL",
            stream.last_read_at or "never",
            cdc_quarantined_rows(stream=stream),
            plan.max_bad_rows,
            f"; last error: {secrets_scrub(stream.last_error)}" if stream.last_error else "",
            "; its position is gone from the source: roll back to setup" if stream.source_lost_at else "",
        )

    @admin.display(description="phase", ordering="phase")
    def phase_badge(self, plan: MigrationPlan) -> str:
        return format_html(
            '<span class="phase-badge phase-{}" data-phase="{}">{}</span>',
            plan.phase,
            plan.phase,
            plan.get_phase_display(),
        )

    @admin.display(description="progress (total, then by table)")
    def progress_bars(self, plan: MigrationPlan) -> str:
        run = run_latest(plan=plan)
        if run is None:
            return "no run yet"
        return progress_html(run_progress(run=run))

    @admin.display(description="items/s")
    def items_per_second_display(self, plan: MigrationPlan) -> str:
        run = run_latest(plan=plan)
        return "-" if run is None else f"{run.items_per_second:,.1f}"

    @admin.display(description="ETA")
    def eta_display(self, plan: MigrationPlan) -> str:
        run = run_latest(plan=plan)
        return "-" if run is None else duration_display(run_progress(run=run)["eta_seconds"])

    @admin.display(description="latest validation")
    def latest_validation(self, plan: MigrationPlan):
        problem = plan_tables_problem(plan=plan)
        if problem:
            return format_html(
                '<span class="tables-missing" style="color:red" title="{}">target tables missing</span>', problem
            )
        report = plan.validations.order_by("-created_at").first()
        if report is None:
            return "never"
        colour = "green" if report.clean else "red"
        label = "clean" if report.clean else report.summary()
        if report.quick:
            return format_html('<span style="color:{}">{} (quick: keys only)</span>', colour, label)
        return format_html('<span style="color:{}">{}</span>', colour, label)

    @admin.display(description="source")
    def source_display(self, plan: MigrationPlan) -> str:
        return url_display(plan.source_url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    @admin.display(description="mapping")
    def mapping_display(self, plan: MigrationPlan) -> str:
        """Read-only and indented: a mapping changes through its file (``migrate_to_dynamodb --mapping FILE``),
        which checks it against the source first; the admin's form would store it unchecked."""
        text = json.dumps(plan.mapping, indent=2, ensure_ascii=False, sort_keys=False)
        return format_html('<pre class="mapping-json" id="plan-mapping">{}</pre>', text)

    def get_exclude(self, request: HttpRequest, obj: MigrationPlan | None = None) -> list[str]:
        if request.user.is_superuser:
            return [] if obj is None else ["mapping"]  # a new plan by hand needs its mapping typed in
        return ["source_url", "mapping"]

    def get_readonly_fields(self, request: HttpRequest, obj: MigrationPlan | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields if obj is None else ["mapping_display", *fields]
        return ["name", "source_display", "mapping_display", "target_tables", "cdc", *fields]

    def save_model(self, request: HttpRequest, obj: MigrationPlan, form: Any, change: bool) -> None:
        if not request.user.is_superuser and set(form.changed_data) & set(self.CONFIGURATION_FIELDS):
            raise PermissionDenied
        super().save_model(request, obj, form, change)
        if form.changed_data:
            logger.warning(
                "migration plan %s: %s changed by %s",
                obj.name,
                ", ".join(form.changed_data),
                request.user.get_username(),
            )

    # --- the console (change page, JSON progress, buttons) ----------------------------------------

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            path(
                "<path:object_id>/console/<str:action>/",
                self.admin_site.admin_view(require_POST(self.console_action_view)),
                name="{}_{}_console".format(*info),
            ),
            *super().get_urls(),
        ]

    def _plan(self, request: HttpRequest, object_id: str) -> MigrationPlan:
        plan = self.get_object(request, object_id)
        if plan is None:
            raise Http404(f"No migration plan {object_id!r}.")
        return plan

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied  # before the lookup: whether a plan exists is not for everyone to learn
        plan = self._plan(request, object_id)
        if not self.has_view_permission(request, plan):
            raise PermissionDenied
        return JsonResponse(plan_progress(plan=plan))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        plan = self.get_object(request, object_id)
        if plan is not None and self.has_view_permission(request, plan):
            runs = list(plan.runs.order_by("-started_at", "-id")[:RUNS_SHOWN])
            report = plan.validations.order_by("-created_at", "-id").first()
            extra_context = {
                **(extra_context or {}),
                "console": {
                    "progress": plan_progress(plan=plan),
                    "runs": [{"run": run, "progress": run_progress(run=run)} for run in runs],
                    "report": report,
                    "diffs": report_diffs(report),
                    "backups": list(plan.backups.order_by("-created_at", "-id")[:RUNS_SHOWN]),
                    "backup_plan": backup_plan_lines(plan) if plan_next_phase(plan=plan) else None,
                    "transitions": list(plan.transitions.order_by("-created_at", "-id")[:RUNS_SHOWN]),
                    "can_act": self.has_change_permission(request, plan),
                    "poll_ms": POLL_MS,
                    "progress_url": reverse("admin:migration_app_migrationplan_progress", args=[plan.pk]),
                    "action_url": reverse("admin:migration_app_migrationplan_console", args=[plan.pk, "ACTION"]),
                },
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def console_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied  # before the lookup, as Django's own change view does
        plan = self._plan(request, object_id)
        if not self.has_change_permission(request, plan):
            raise PermissionDenied
        try:
            message = self._console_action(request, plan, action)
        except ApplicationError as exc:
            ok, message = False, secrets_scrub(exc.message)
        else:
            ok = True
            self.log_change(request, plan, message)
        plan.refresh_from_db()
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"ok": ok, "message": message, "progress": plan_progress(plan=plan)})
        self.message_user(request, message, messages.SUCCESS if ok else messages.ERROR)
        return HttpResponseRedirect(reverse("admin:migration_app_migrationplan_change", args=[plan.pk]))

    def _console_action(self, request: HttpRequest, plan: MigrationPlan, action: str) -> str:
        """Run one button's service; the message for the user (and the admin log)."""
        user = request.user
        if action == "start":
            run = plan_backfill_start(plan=plan, actor=user)
            return f"Started {run.get_kind_display().lower()} run #{run.pk} ({run.segments.count()} segment(s))."
        if action in ("pause", "resume"):
            run = run_latest(plan=plan)
            if run is None:
                raise ApplicationError(ERR_NO_RUN.format(plan=plan.name, verb=action))
            run = run_pause(run=run) if action == "pause" else run_resume(run=run)
            return f"Run #{run.pk} {'paused' if action == 'pause' else 'resumed'} ({run.get_status_display().lower()})."
        if action == "validate":
            validate_task.delay(plan.pk)
            return f"Validation of {plan.name} queued."
        if action == "advance":
            to_phase = plan_next_phase(plan=plan)
            if to_phase is None:
                raise ApplicationError(f"{plan.phase} is the last phase.")
            if problem := plan_tables_problem(plan=plan):
                raise ApplicationError(problem)
            transition = plan_advance(
                plan=plan, to_phase=to_phase, actor=user, reason=request.POST.get("reason", "") or "console"
            )
            backed_up = "; ".join(transition.backup_texts) or "no target table to back up"
            return f"{plan.name} advanced to {to_phase}. Backed up first: {backed_up}."
        if action == "estimate":
            lines = [choice.text() for choice in plan_backup_choices(plan=plan)]
            return "Backup estimate: " + (" ".join(lines) or "no target table exists yet: nothing to back up.")
        if action == "rollback":
            reason = request.POST.get("reason", "").strip()
            if not reason:
                raise ApplicationError(ERR_REASON)
            transition = plan_rollback(plan=plan, actor=user, reason=reason)
            restored = restored_text(transition.restored)
            return f"{plan.name} rolled back to {transition.to_phase}: {reason}. Restored: {restored}."
        raise ApplicationError(ERR_UNKNOWN_ACTION.format(action=action))

    def _each(self, request, queryset, action, done_message):
        done = 0
        for plan in queryset:
            try:
                action(plan)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{plan.name}: {secrets_scrub(exc.message)}", messages.ERROR)
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)

    @admin.action(description="Advance to the next phase (backs up target tables first)", permissions=["change"])
    def advance_phase(self, request, queryset):
        def advance(plan):
            index = PHASE_ORDER.index(plan.phase)
            if index + 1 >= len(PHASE_ORDER):
                raise ApplicationError(f"{plan.phase} is the last phase.")
            transition = plan_advance(
                plan=plan, to_phase=PHASE_ORDER[index + 1], actor=request.user, reason="admin action"
            )
            for line in transition.backup_texts:
                self.message_user(request, f"{plan.name}: {line}", messages.INFO)

        self._each(request, queryset, advance, lambda n: ngettext("%d plan advanced.", "%d plans advanced.", n) % n)

    @admin.action(description="Roll back the last phase (restores its backups)", permissions=["change"])
    def rollback_phase(self, request, queryset):
        def rollback(plan):
            transition = plan_rollback(plan=plan, actor=request.user, reason="admin rollback")
            self.message_user(request, f"{plan.name}: restored {restored_text(transition.restored)}", messages.INFO)

        self._each(
            request,
            queryset,
            rollback,
            lambda n: ngettext("%d plan rolled back.", "%d plans rolled back.", n) % n,
        )

    @admin.action(description="Validate now (queued)", permissions=["change"])
    def validate_now(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda plan: validate_task.delay(plan.pk),
            lambda n: ngettext("%d validation queued.", "%d validations queued.", n) % n,
        )

    @admin.action(description="Catch up now (queued)", permissions=["change"])
    def catch_up_now(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda plan: catch_up_task.delay(plan.pk),
            lambda n: ngettext("%d catch-up queued.", "%d catch-ups queued.", n) % n,
        )

    @admin.action(description="Back up target tables", permissions=["change"])
    def backup_now(self, request, queryset):
        def backup(plan):
            for table in plan.target_tables:
                choice = backup_choose(table=table)
                logger.info("plan %s, admin backup by %s: %s", plan.name, request.user.get_username(), choice.text())
                done = backup_table(
                    table=table, plan=plan, reason=f"admin backup by {request.user.get_username()}", choice=choice
                )
                self.message_user(request, f"{plan.name}: expected {choice.text()} Done: {backup_text(done)}")

        self._each(
            request,
            queryset,
            backup,
            lambda n: ngettext("Backed up %d plan's tables.", "Backed up %d plans' tables.", n) % n,
        )


@admin.register(ValidationReport)
class ValidationReportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "plan",
        "mode",
        "created_at",
        "expected",
        "found",
        "missing",
        "extra",
        "different",
        "count_mismatches",
        "contract_violations",
        "in_flight",
        "unsettled",
        "expired_ignored",
        "is_clean",
    ]
    list_filter = ["plan", "mode"]
    readonly_fields = [field.name for field in ValidationReport._meta.fields]

    @admin.display(boolean=True, description="clean")
    def is_clean(self, report: ValidationReport) -> bool:
        return report.clean


@admin.register(QuarantinedRow)
class QuarantinedRowAdmin(admin.ModelAdmin):
    """Rows a run or change capture set aside (could not be transformed or written), with why; exportable."""

    list_display = ["id", "plan", "origin", "rule", "source_table", "source_key", "reason", "created_at"]
    list_filter = ["plan", "run", "stream", "change", "rule"]
    search_fields = ["reason"]
    readonly_fields = [field.name for field in QuarantinedRow._meta.fields]
    actions = ["export_jsonl"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="set aside by", ordering="id")
    def origin(self, row: QuarantinedRow) -> str:
        if row.stream_id is not None:
            return format_html("change capture: {} committed at {}", row.change, row.commit_lsn)
        return format_html("run #{}", row.run_id)

    @admin.action(description="Export as JSON Lines", permissions=["view"])
    def export_jsonl(self, request, queryset):
        response = HttpResponse(quarantine_lines(rows=queryset), content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="quarantine.jsonl"'
        return response


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    """Backups with what a restore of each is checked by. Deleting one deletes what it made too (its on-demand
    backup in DynamoDB, its export file): ``backup_delete``. Unfinished ones (state ``taking``) are listed here;
    ``backup_table --orphans`` also lists on-demand backups that no record names."""

    list_display = ["id", "table", "plan", "reason", "method", "state", "item_count", "restore_check", "created_at"]
    list_filter = ["table", "method", "state"]
    readonly_fields = [*(field.name for field in Backup._meta.fields), "restore_check"]

    def delete_model(self, request: HttpRequest, obj: Backup) -> None:
        self._delete_made(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        self._delete_made(request, list(queryset))

    def _delete_made(self, request: HttpRequest, backups: list[Backup]) -> None:
        for backup in backups:
            try:
                result = backup_delete(backup=backup)
            except ApplicationError as exc:
                self.message_user(
                    request, f"backup #{backup.pk} of {backup.table}: {secrets_scrub(exc.message)}", messages.ERROR
                )
                continue
            made = [*result["deleted_aws_backups"], *filter(None, [result["deleted_file"]])]
            self.message_user(
                request, f"backup #{result['backup']} of {result['table']}: deleted {', '.join(made) or 'the record'}"
            )

    @admin.display(description="a restore is checked by")
    def restore_check(self, backup: Backup) -> str:
        """Exact (count and checksum taken at backup time) or the weaker check, named as weaker."""
        if backup.checksummed:
            return format_html('<span class="restore-check exact">{}</span>', backup.verification_text)
        return format_html(
            '<span class="restore-check approximate" style="color:#b45309">{} (never reported verified)</span>',
            backup.verification_text,
        )


@admin.register(PhaseTransition)
class PhaseTransitionAdmin(admin.ModelAdmin):
    list_display = ["plan", "from_phase", "to_phase", "rollback", "actor_name", "reason", "created_at"]
    list_filter = ["plan", "rollback"]
    readonly_fields = [
        "plan",
        "from_phase",
        "to_phase",
        "rollback",
        "actor",
        "actor_name",
        "reason",
        "backups",
        "created_at",
    ]
