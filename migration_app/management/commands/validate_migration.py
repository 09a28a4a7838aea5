"""Validate a plan (source vs target); exit 1 on any mismatch."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.models import ValidationReport
from migration_app.services.dispatch import plan_validate_dispatch
from migration_app.services.plans import plan_get
from migration_app.services.validation import plan_validate, report_summary


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("plan", help="Plan name or id.")
        parser.add_argument("--quick", action="store_true", help="Counts and keys only.")
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--distributed", action="store_true", help="Run the parts as Celery tasks and wait for the merged report."
        )

    def handle(self, *args, **options):
        try:
            plan = plan_get(name_or_id=options["plan"])
            mode = "quick" if options["quick"] else "full"
            if options["distributed"]:
                report = ValidationReport.objects.get(pk=plan_validate_dispatch(plan=plan, mode=mode).get())
            else:
                report = plan_validate(plan=plan, mode=mode)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        summary = report_summary(report)
        if options["json"]:
            self.stdout.write(json.dumps({"plan": plan.name, "validation": summary, "samples": report.samples}))
        else:
            for kind, entries in report.samples.items():
                for entry in entries:
                    self.stdout.write(f"{kind}: {json.dumps(entry)}")
            state = "clean" if report.clean else "FAILED"
            mode = "quick (keys and counts only; cutover needs a full validation)" if report.quick else "full"
            for entry in report.counts:
                self.stdout.write(
                    f"count {entry['table']}{' [' + entry['entity_type'] + ']' if entry['entity_type'] else ''}: "
                    f"{entry['source_rows']} source rows selected ({entry['expired_rows']} expired), "
                    f"{entry['target_items']} target items"
                )
            self.stdout.write(
                f"plan {plan.name}: {mode} validation {state}: {report.expected} expected, {report.missing} missing, "
                f"{report.extra} extra, {report.different} different, {report.count_mismatches} count mismatch(es), "
                f"{report.contract_violations} type-contract violation(s), {report.in_flight} in flight (settled), "
                f"{report.unsettled} unsettled ({report.expired_ignored} expired ignored)"
            )
        if not report.clean:
            sys.exit(1)
