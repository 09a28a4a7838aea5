"""Restore a backup (by id) into its table or a new one, and verify count and checksum."""

import json

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.models import Backup
from migration_app.services.backups import backup_restore


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("backup", type=int, help="Backup id (see the admin or backup_table's output).")
        parser.add_argument("--target-table", help="Restore into this table (created if missing).")

    def handle(self, *args, **options):
        backup = Backup.objects.filter(pk=options["backup"]).first()
        if backup is None:
            raise CommandError(f"No backup #{options['backup']}.")
        try:
            result = backup_restore(backup=backup, target_table=options["target_table"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(result))
