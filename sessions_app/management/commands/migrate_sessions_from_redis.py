"""Copy legacy Redis sessions into DynamoDB (resumable), or --verify the copy (non-zero exit on any difference)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from lizzy.errors import ApplicationError
from lizzy.redis import redis_dbsize
from sessions_app.services.legacy_copy import sessions_migrate_from_redis, sessions_verify_copy


class Command(BaseCommand):
    help = "Copy lizzy:session:* keys from Redis into DynamoDB, keeping each key's remaining TTL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--redis-url", default=None, help="Source Redis (default: the session Redis).")
        parser.add_argument("--verify", action="store_true", help="Compare instead of copying.")
        parser.add_argument("--restart", action="store_true", help="Ignore the saved cursor and start over.")
        parser.add_argument("--ttl-tolerance", type=int, default=5, help="Seconds of TTL difference tolerated.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["redis_url"]
        try:
            if options["verify"]:
                self._verify(url, options["ttl_tolerance"])
            else:
                self._copy(url, options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _copy(self, url: str | None, options: dict[str, Any]) -> None:
        total = redis_dbsize(url=url)  # an upper bound: the database may hold other keys too
        with tqdm(total=total, unit="key", disable=options["no_progress"], file=self.stderr) as bar:
            result = sessions_migrate_from_redis(redis_url=url, restart=options["restart"], on_page=bar.update)
        self.stdout.write(
            f"Copied {result.copied} session(s); skipped {result.skipped_expired} expired during the copy, "
            f"{result.skipped_newer} already newer (or equal) in DynamoDB, {result.invalid} unreadable; "
            f"scanned {result.scanned}" + (f" (resumed at cursor {result.resumed_from})" if result.resumed_from else "")
        )

    def _verify(self, url: str | None, tolerance: int) -> None:
        result = sessions_verify_copy(redis_url=url, ttl_tolerance_seconds=tolerance)
        self.stdout.write(
            f"Checked {result.checked}: {result.missing} missing, {result.different} different, "
            f"{result.ttl_mismatch} TTL off by more than {tolerance} s."
        )
        for sample in result.samples:
            self.stdout.write(f"  {sample['phoneHash']}: {sample['problem']}")
        if not result.ok:
            raise CommandError("The DynamoDB copy differs from Redis.")
