"""Back up a DynamoDB table: CreateBackup where supported, and a JSON Lines export with count and checksum."""

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.backups import backup_table


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("table")
        parser.add_argument("--reason", default="manual")

    def handle(self, *args, **options):
        try:
            backup = backup_table(table=options["table"], reason=options["reason"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"backup #{backup.pk} of {backup.table}: {backup.item_count} items, sha256-sum {backup.checksum}, "
            f"{backup.location}" + (f", AWS backup {backup.aws_backup_arn}" if backup.aws_backup_arn else "")
        )
