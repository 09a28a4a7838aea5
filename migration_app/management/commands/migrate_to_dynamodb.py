"""Backfill a source into DynamoDB with a mapping, then validate; exit 0 only when validation is clean."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lizzy.dynamodb import to_storable
from lizzy.errors import ApplicationError
from migration_app.models import MigrationPlan, MigrationRun, Phase, RunKind
from migration_app.services import plans as plan_services
from migration_app.services import runs as run_services
from migration_app.services.dispatch import run_dispatch, run_resume
from migration_app.services.phases import plan_advance
from migration_app.services.validation import plan_validate, report_summary


def _rows(text: str) -> int:
    """A count of rows: 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of rows") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: a count of rows is 0 or more")
    return value


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--mapping", help="AWS DMS table-mapping JSON (plus our extensions).")
        parser.add_argument("--source", help="postgres://..., mysql://..., sqlite:///FILE or duckdb:///FILE")
        parser.add_argument(
            "--resume",
            type=int,
            metavar="RUN",
            help="Resume failed, paused or cancelled run RUN from its checkpoints (no --mapping/--source needed).",
        )
        parser.add_argument("--cancel", type=int, metavar="RUN", help="Cancel run RUN after the page in flight.")
        parser.add_argument(
            "--plan", help="Plan name (default: the mapping file's name; for mapping.json, its directory's name)."
        )
        parser.add_argument("--target-table", help="Write every rule into this table instead (one target only).")
        parser.add_argument("--limit", type=int, help="At most N rows per entity (a first test on a small set).")
        parser.add_argument("--dry-run", action="store_true", help="Write nothing; print sample items.")
        parser.add_argument("--check", action="store_true", help="Only check the mapping against the source.")
        parser.add_argument(
            "--segments",
            type=int,
            default=1,
            help="About N work units per entity, and N threads in this process (without --async).",
        )
        parser.add_argument(
            "--max-bad-rows",
            type=_rows,
            default=None,
            help="Rows that may be quarantined before the run fails (default: the plan's setting, 0; with "
            "--resume: the larger of the run's and the plan's).",
        )
        parser.add_argument(
            "--cdc",
            action="store_true",
            help="Change data capture (PostgreSQL: a replication slot; MySQL/MariaDB: the row-based binlog) from "
            "backfill on, applied by migration_cdc, instead of updated_at catch-ups. docs/MIGRATIONS.md.",
        )
        parser.add_argument("--async", dest="run_async", action="store_true", help="Dispatch segments to Celery.")
        parser.add_argument("--quick", action="store_true", help="Validate keys only (no value comparison).")
        parser.add_argument("--json", action="store_true", help="End with one JSON line instead of text.")

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["cancel"]:
            try:
                run = run_services.run_cancel(run=self._run_of(options["cancel"]))
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"run #{run.pk} {run.status}")
            return
        if options["resume"]:
            run = self._run_of(options["resume"])
            options["plan"] = run.plan.name
            mapping, options["source"] = run.plan.mapping, run.plan.source_url
            try:
                summary = self._resume(run, options)
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self._report(summary, options, started)
            return
        if not options["mapping"] or not options["source"]:
            raise CommandError("--mapping and --source are required (or --resume RUN).")
        path = Path(options["mapping"])
        try:
            mapping = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read mapping {path}: {exc}") from exc
        if options["target_table"]:
            targets = {
                rule.get("target-table-name")
                for rule in mapping.get("rules", [])
                if rule.get("rule-type") == "object-mapping"
            }
            if len(targets) > 1:
                raise CommandError(
                    "--target-table needs a mapping with one target table; this one has " + ", ".join(sorted(targets))
                )
            for rule in mapping.get("rules", []):
                if rule.get("rule-type") == "object-mapping":
                    rule["target-table-name"] = options["target_table"]
        # plans/serenya/mapping.json is the plan "serenya", as docs/MIGRATIONS.md's quick start says
        stem = path.resolve().parent.name if path.stem.lower() == "mapping" else path.stem
        name = options["plan"] or stem.replace("_", "-").lower()
        try:
            summary = self._run(name, mapping, options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self._report(summary, options, started)

    def _run_of(self, run_id: int) -> MigrationRun:
        run = MigrationRun.objects.select_related("plan").filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"There is no run #{run_id}.")
        return run

    def _resume(self, run, options):
        if options["run_async"]:
            run = run_resume(run=run, max_bad_rows=options["max_bad_rows"])
            return self._async_summary(run.plan, run)
        run = run_services.run_reopen(run=run, max_bad_rows=options["max_bad_rows"])
        with plan_services.plan_context(plan=run.plan) as context:
            return self._execute(run.plan, context, run, options)

    def _async_summary(self, plan, run):
        return {
            "plan": plan.name,
            "run": run.pk,
            "status": run.status,
            "rows_read": run.rows_read,
            "items_written": run.items_written,
            "items_skipped": run.items_skipped,
            "validation": None,
        }

    def _report(self, summary, options, started):
        summary["seconds"] = round(time.monotonic() - started, 2)
        validation = summary.get("validation")
        if options["json"]:
            self.stdout.write(json.dumps(summary, default=str))
        else:
            state = "skipped" if validation is None else ("clean" if validation["clean"] else "FAILED")
            if validation is not None and validation["quick"]:
                state += " (quick: keys and counts only)"
            counts = (
                ""
                if validation is None
                else (
                    f" ({validation['missing']} missing, {validation['extra']} extra,"
                    f" {validation['different']} different)"
                )
            )
            self.stdout.write(
                f"plan {summary['plan']}: {summary['rows_read']} rows read, {summary['items_written']} items written, "
                f"{summary['items_skipped']} skipped; validation {state}{counts} in {summary['seconds']} s"
            )
        if validation is not None and not validation["clean"]:
            sys.exit(1)

    def _run(self, name, mapping, options):
        if options["check"] or options["dry_run"]:
            entities = plan_services.plan_check(
                mapping=mapping, source_url=options["source"], probe_values=options["check"]
            )
            summary = {
                "plan": name,
                "rows_read": 0,
                "items_written": 0,
                "items_skipped": 0,
                "validation": None,
                "entities": [entity.name for entity in entities],
            }
            if options["dry_run"]:
                plan = MigrationPlan(name=name, source_url=options["source"], mapping=mapping)
                with plan_services.plan_context(plan=plan) as context:
                    sample = run_services.dry_run_sample(context=context)
                for entry in sample:
                    self.stdout.write(json.dumps(to_storable(entry), default=str))
                summary["dry_run"] = True
            return summary
        plan = plan_services.plan_save(
            name=name,
            source_url=options["source"],
            mapping=mapping,
            max_bad_rows=options["max_bad_rows"],
            cdc=True if options["cdc"] else None,
        )
        with plan_services.plan_context(plan=plan) as context:
            plan_services.plan_setup_tables(context=context)
            if plan.phase == Phase.SETUP:
                plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="migrate_to_dynamodb", reason="backfill started")
            run = run_services.run_pending(plan=plan)
            if run is None:
                kind = RunKind.CATCH_UP if plan.phase == Phase.PARALLEL else RunKind.BACKFILL
                since = run_services.catch_up_since(plan=plan) if kind == RunKind.CATCH_UP else None
                run = run_services.run_create(
                    context=context, kind=kind, segments=options["segments"], limit=options["limit"], since=since
                )
            if options["run_async"]:
                run_dispatch(run=run)
                run.refresh_from_db()
                return self._async_summary(plan, run)
            return self._execute(plan, context, run, options)

    def _execute(self, plan, context, run, options):
        total = sum(segment.rows_expected or 0 for segment in run.segments.all())
        with tqdm(total=total, initial=run.rows_read, unit="rows", file=sys.stderr, disable=None) as bar:
            run = run_services.run_execute(run=run, context=context, workers=options["segments"], on_rows=bar.update)
        if run.last_error:
            raise CommandError(f"run #{run.pk} failed: {run.last_error}")
        if run.rows_quarantined:
            self.stderr.write(
                f"run #{run.pk}: {run.rows_quarantined} row(s) quarantined (admin: Quarantined rows; "
                f"export: migration_quarantine {plan.name})"
            )
        validation = None
        if not run.row_limit:
            validation = report_summary(plan_validate(plan=plan, mode="quick" if options["quick"] else "full"))
        return {
            "plan": plan.name,
            "run": run.pk,
            "status": run.status,
            "rows_read": run.rows_read,
            "items_written": run.items_written,
            "items_skipped": run.items_skipped,
            "rows_quarantined": run.rows_quarantined,
            "unprocessed_retries": run.unprocessed_retries,
            "throttle_retries": run.throttle_retries,
            "unit_retries": sum(run.segments.values_list("retries", flat=True)),
            "units": run.segments.count(),
            "items_per_second": round(run.items_per_second, 1),
            "validation": validation,
        }
