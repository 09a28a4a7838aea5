"""Run a plan's change-capture worker: apply the source's changes to DynamoDB until stopped.

One worker per plan holds the lease; a second one exits with an error (run it under a supervisor,
or as the Celery task ``migration_app.tasks.cdc_task``). ``--until-idle`` returns once caught up.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.cdc.worker import cdc_run
from migration_app.services.plans import plan_get


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("plan", help="Plan name or id.")
        parser.add_argument("--until-idle", action="store_true", help="Stop when caught up (or when it must wait).")
        parser.add_argument("--max-seconds", type=float, default=None, help="Stop after this long.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        try:
            plan = plan_get(name_or_id=options["plan"])
            outcome = cdc_run(plan=plan, until_idle=options["until_idle"], max_seconds=options["max_seconds"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        summary = {"plan": plan.name, **outcome.as_dict()}
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"plan {plan.name}: {outcome.transactions} transaction(s), {outcome.changes} change(s) applied "
                f"({outcome.puts} put, {outcome.deletes} deleted, {outcome.quarantined} quarantined), "
                f"confirmed up to {outcome.confirmed_lsn or '-'}" + (f"; {outcome.waiting}" if outcome.waiting else "")
            )
