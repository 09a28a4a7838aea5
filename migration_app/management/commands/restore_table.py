"""Restore a backup (by id) into its table or a new one, and check its item count and checksum.

An export restores into any table; a native backup (CreateBackup) only into a table that does not exist.
The JSON result says ``verified`` (true only for an exact count and checksum match) and ``verified_by``.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.models import Backup
from migration_app.services.backups import backup_restore


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("backup", type=int, help="Backup id (see the admin or backup_table's output).")
        parser.add_argument(
            "--target-table",
            help="Restore into this table (an export: created if missing; a native backup: must not exist).",
        )

    def handle(self, *args, **options):
        backup = Backup.objects.filter(pk=options["backup"]).first()
        if backup is None:
            raise CommandError(f"No backup #{options['backup']}.")
        try:
            result = backup_restore(backup=backup, target_table=options["target_table"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(result))
