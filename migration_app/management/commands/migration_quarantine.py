"""Export a plan's quarantined rows (rows a run or change capture could not transform or write) as JSON Lines."""

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.models import QuarantinedRow
from migration_app.selectors import quarantine_lines
from migration_app.services.plans import plan_get


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("plan", help="Plan name or id.")
        parser.add_argument("--run", type=int, help="Only this run's rows.")

    def handle(self, *args, **options):
        try:
            plan = plan_get(name_or_id=options["plan"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        rows = QuarantinedRow.objects.filter(plan=plan)
        if options["run"]:
            rows = rows.filter(run_id=options["run"])
        for line in quarantine_lines(rows=rows):
            self.stdout.write(line, ending="")
