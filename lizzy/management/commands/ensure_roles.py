from django.core.management.base import BaseCommand

from lizzy.roles import roles_ensure


class Command(BaseCommand):
    help = "Create the 'viewer' (read-only) and 'operator' staff groups and grant their permissions."

    def handle(self, *args, **options) -> None:
        for group, count in roles_ensure().items():
            self.stdout.write(f"{group}: {count} permission(s)")
