"""Back up a DynamoDB table: CreateBackup where supported, and a JSON Lines export with count and checksum."""

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.backups import backup_estimate, backup_table


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("table")
        parser.add_argument("--reason", default="manual")
        parser.add_argument("--segments", type=int, default=None, help="Parallel Scan segments of the export.")
        parser.add_argument("--estimate", action="store_true", help="Only print the expected time and size.")

    def handle(self, *args, **options):
        try:
            estimate = backup_estimate(table=options["table"], segments=options["segments"])
            (self.stdout if options["estimate"] else self.stderr).write("expected: " + estimate.text())
            if options["estimate"]:
                return
            backup = backup_table(table=options["table"], reason=options["reason"], segments=options["segments"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"backup #{backup.pk} of {backup.table}: {backup.item_count} items, sha256-sum {backup.checksum}, "
            f"{backup.location}" + (f", AWS backup {backup.aws_backup_arn}" if backup.aws_backup_arn else "")
        )
