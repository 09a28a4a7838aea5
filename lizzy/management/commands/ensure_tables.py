from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from lizzy.tables import product_tables, table_ensure


class Command(BaseCommand):
    help = "Create every DynamoDB table the product needs (idempotent): on-demand, TTL, GSIs; waits for ACTIVE."

    def handle(self, *args, **options):
        for spec in product_tables():
            try:
                result = table_ensure(spec=spec)
            except ApplicationError as exc:
                raise CommandError(f"{spec.name}: {exc.message}") from exc
            style = self.style.SUCCESS if result.created else self.style.NOTICE
            self.stdout.write(style(result.describe()))
