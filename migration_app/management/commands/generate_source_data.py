"""Create a shipped plan's source schema and fill it with generated rows (rehearsals, benchmarks)."""

from django.core.management.base import BaseCommand, CommandError

from migration_app.services.sample_data import k9_generate, serenya_generate


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("plan", choices=["serenya", "k9"])
        parser.add_argument(
            "--url", required=True, help="serenya: postgres://... or sqlite:///FILE; k9: duckdb:///FILE"
        )
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        url = options["url"]
        if options["plan"] == "k9":
            if not url.startswith("duckdb:///"):
                raise CommandError("k9 needs --url duckdb:///FILE")
            counts = k9_generate(path=url.split("duckdb:///", 1)[1], users=options["users"], seed=options["seed"])
        else:
            counts = serenya_generate(url=url, users=options["users"], seed=options["seed"])
        self.stdout.write(", ".join(f"{table}: {count}" for table, count in counts.items()))
