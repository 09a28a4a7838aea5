"""Back up a DynamoDB table by LIZZY_BACKUP_METHOD (auto, native, export): CreateBackup or a JSON Lines export.

``--orphans [TABLE]`` lists backups that never finished (a kill between CreateBackup and the record: the record
was written first and names the on-demand backup it may have left) and on-demand backups of the recorded tables
that no record names; ``--orphans --delete`` deletes the unfinished ones older than ``--older-than`` hours (24),
with what they left. On-demand backups no record names are listed only, never deleted.
"""

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from migration_app.services.backups import (
    METHODS,
    backup_choose,
    backup_orphans,
    backup_orphans_delete,
    backup_table,
    backup_text,
)


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("table", nargs="?")
        parser.add_argument("--reason", default="manual")
        parser.add_argument("--segments", type=int, default=None, help="Parallel Scan segments of the export.")
        parser.add_argument(
            "--method", choices=METHODS, default=None, help="auto, native or export (default: LIZZY_BACKUP_METHOD)."
        )
        parser.add_argument("--estimate", action="store_true", help="Only print the expected time, size and method.")
        parser.add_argument(
            "--orphans", action="store_true", help="List unfinished backups and unrecorded on-demand backups."
        )
        parser.add_argument("--delete", action="store_true", help="With --orphans: delete the unfinished ones.")
        parser.add_argument(
            "--older-than", type=float, default=24.0, help="With --orphans --delete: only those older (hours)."
        )

    def handle(self, *args, **options):
        try:
            if options["orphans"]:
                self._orphans(options)
                return
            if not options["table"]:
                raise CommandError("Name the table to back up (or --orphans).")
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

    def _orphans(self, options):
        if options["delete"]:
            deleted = backup_orphans_delete(
                table=options["table"], older_than=dt.timedelta(hours=options["older_than"])
            )
            for result in deleted:
                self.stdout.write("deleted: " + json.dumps(result))
            self.stdout.write(f"{len(deleted)} unfinished backup(s) deleted.")
        orphans = backup_orphans(table=options["table"])
        for orphan in orphans:
            self.stdout.write(orphan.text())
        self.stdout.write(f"{len(orphans)} orphan(s).")
