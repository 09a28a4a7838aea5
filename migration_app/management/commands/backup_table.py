"""Back up a DynamoDB table by LIZZY_BACKUP_METHOD (auto, native, export): CreateBackup or a JSON Lines export."""

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.backups import METHODS, backup_choose, backup_table, backup_text


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("table")
        parser.add_argument("--reason", default="manual")
        parser.add_argument("--segments", type=int, default=None, help="Parallel Scan segments of the export.")
        parser.add_argument(
            "--method", choices=METHODS, default=None, help="auto, native or export (default: LIZZY_BACKUP_METHOD)."
        )
        parser.add_argument("--estimate", action="store_true", help="Only print the expected time, size and method.")

    def handle(self, *args, **options):
        try:
            choice = backup_choose(table=options["table"], method=options["method"], segments=options["segments"])
            (self.stdout if options["estimate"] else self.stderr).write("expected: " + choice.text())
            if options["estimate"]:
                return
            backup = backup_table(
                table=options["table"], reason=options["reason"], segments=options["segments"], choice=choice
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(backup_text(backup))
