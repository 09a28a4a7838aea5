from django.core.management.base import BaseCommand

from lizzy.admin_login import login_unlock


class Command(BaseCommand):
    help = "Clear an admin account's failed sign-in counters, lockout and backoff (and optionally an address's)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("username")
        parser.add_argument("--address", help="also clear this client address's counter (as the server sees it)")

    def handle(self, *args, **options) -> None:
        removed = login_unlock(username=options["username"], address=options.get("address"))
        self.stdout.write(f"unlocked {options['username']} ({removed} counter(s) cleared)")
