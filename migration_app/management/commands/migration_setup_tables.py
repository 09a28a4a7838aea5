"""Create a plan's missing target tables (keys, GSIs, TTL from its mapping); existing tables are left alone.

Point-in-time recovery is switched on for every target table where the endpoint has it (``LIZZY_BACKUP_PITR``).

``ensure_tables`` creates the product's own tables only; a migration plan's target tables come from its
mapping. After a local endpoint restart (it keeps nothing) this puts them back, empty: start the backfill
again, then validate.
"""

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.plans import plan_context, plan_get, plan_setup_tables


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("plan", help="Plan name or id.")

    def handle(self, *args, **options):
        try:
            plan = plan_get(name_or_id=options["plan"])
            with plan_context(plan=plan) as context:
                created = plan_setup_tables(context=context)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        pitr = ", ".join(f"{table}: {status}" for table, status in context.pitr.items())
        self.stdout.write(f"{plan.name}: point-in-time recovery {pitr}.")
        if not created:
            self.stdout.write(f"{plan.name}: every target table exists ({', '.join(plan.target_tables)}).")
            return
        self.stdout.write(
            f"{plan.name}: created {', '.join(created)} (empty). Start the backfill again "
            "(console: Start backfill, or migrate_to_dynamodb), then validate."
        )
