"""Plans, their phase, latest run (progress, items/s) and latest validation."""

import json

from django.core.management.base import BaseCommand

from migration_app.selectors import plan_list, plan_tables_problem, run_latest, validation_latest


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        rows = []
        for plan in plan_list():
            run = run_latest(plan=plan)
            report = validation_latest(plan=plan)
            rows.append(
                {
                    "plan": plan.name,
                    "phase": plan.phase,
                    "tables": plan.target_tables,
                    "tables_problem": plan_tables_problem(plan=plan),
                    "run": None
                    if run is None
                    else {
                        "id": run.pk,
                        "kind": run.kind,
                        "status": run.status,
                        "rows_read": run.rows_read,
                        "items_written": run.items_written,
                        "items_skipped": run.items_skipped,
                        "segments_done": run.segments.filter(done=True).count(),
                        "segments": run.segments.count(),
                        "items_per_second": round(run.items_per_second, 1),
                        "last_error": run.last_error,
                    },
                    "validation": None
                    if report is None
                    else {
                        **report.summary(),
                        "clean": report.clean,
                        "mode": report.mode,
                        "quick": report.quick,
                        "at": report.created_at.isoformat(),
                    },
                }
            )
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No migration plans.")
        for row in rows:
            run, validation = row["run"], row["validation"]
            run_text = (
                "no run"
                if run is None
                else (
                    f"run #{run['id']} {run['kind']} {run['status']}: {run['rows_read']} rows, "
                    f"{run['items_written']} written, {run['segments_done']}/{run['segments']} segments, "
                    f"{run['items_per_second']} items/s"
                )
            )
            validation_text = (
                "never validated"
                if validation is None
                else ("validation clean" if validation["clean"] else f"validation FAILED {validation}")
            )
            if validation is not None and validation["quick"]:
                validation_text = "quick (keys only) " + validation_text
            if row["tables_problem"]:
                validation_text = f"{validation_text}, which no longer holds: {row['tables_problem']}"
            self.stdout.write(f"{row['plan']} [{row['phase']}] {run_text}; {validation_text}")
