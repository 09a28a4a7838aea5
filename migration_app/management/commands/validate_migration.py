"""Validate a plan (source vs target); exit 1 on any mismatch."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.plans import plan_get
from migration_app.services.validation import plan_validate, report_summary


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("plan", help="Plan name or id.")
        parser.add_argument("--quick", action="store_true", help="Counts and keys only.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        try:
            plan = plan_get(name_or_id=options["plan"])
            report = plan_validate(plan=plan, mode="quick" if options["quick"] else "full")
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
            self.stdout.write(
                f"plan {plan.name}: validation {state}: {report.expected} expected, {report.missing} missing, "
                f"{report.extra} extra, {report.different} different ({report.expired_ignored} expired ignored)"
            )
        if not report.clean:
            sys.exit(1)
