"""Restore a backup (by id) into its table or a new one, and check its item count and checksum.

An export restores into any table; a native backup (CreateBackup) only into a table that does not exist.
The JSON result says ``verified`` (true only for an exact count and checksum match) and ``verified_by``.

``--point-in-time TABLE --time WHEN --target-table NEW`` restores TABLE as it was at WHEN (ISO 8601, UTC when no
offset is given, or ``latest``) by RestoreTableToPointInTime into NEW, never over TABLE. DynamoDB keeps no count
or checksum of a past state, so that result is ``verified: false`` with the restored table's count and checksum.
"""

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from lizzy.errors import ApplicationError
from migration_app.models import Backup
from migration_app.services.backups import LATEST, backup_restore, backup_restore_point_in_time

ERR_TIME = "--time {value!r} is not an ISO 8601 date and time (2026-12-01T23:30:00Z) or 'latest'."
ERR_ARGUMENTS = (
    "Give a backup id, or --point-in-time TABLE with --time WHEN and --target-table NEW_NAME (a new table: a "
    "point-in-time restore never writes over TABLE)."
)


def point_in_time(value: str) -> dt.datetime | None:
    """``latest`` → None; an ISO 8601 time, UTC when it has no offset."""
    if value == LATEST:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(ERR_TIME.format(value=value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("backup", type=int, nargs="?", help="Backup id (see the admin or backup_table's output).")
        parser.add_argument(
            "--target-table",
            help="Restore into this table (an export: created if missing; a native backup or a point-in-time "
            "restore: must not exist).",
        )
        parser.add_argument(
            "--point-in-time", metavar="TABLE", help="Restore TABLE as it was at --time (RestoreTableToPointInTime)."
        )
        parser.add_argument("--time", help="With --point-in-time: ISO 8601 (UTC without an offset), or 'latest'.")

    def handle(self, *args, **options):
        if options["point_in_time"]:
            if options["backup"] is not None or not options["time"] or not options["target_table"]:
                raise CommandError(ERR_ARGUMENTS)
            when = point_in_time(options["time"])
            try:
                result = backup_restore_point_in_time(
                    table=options["point_in_time"], target_table=options["target_table"], when=when
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(json.dumps(result))
            return
        if options["backup"] is None:
            raise CommandError(ERR_ARGUMENTS)
        backup = Backup.objects.filter(pk=options["backup"]).first()
        if backup is None:
            raise CommandError(f"No backup #{options['backup']}.")
        try:
            result = backup_restore(backup=backup, target_table=options["target_table"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(result))
