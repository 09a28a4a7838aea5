from django.core.management.base import BaseCommand

from sessions_app.services.demo import demo_data_seed


class Command(BaseCommand):
    help = "Load the demo CRM catalogue (customer CUST123 at +12065550100 with a Honda HRX217, and more). Idempotent."

    def handle(self, *args, **options):
        summary = demo_data_seed()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {summary.customers} customers, {summary.equipment} equipment, "
                f"{summary.parts} parts, {summary.transactions} transactions."
            )
        )
