"""Run the CDC worker in a subprocess that SIGKILLs itself after it quarantined a bad change, before it
advances the slot past it: the worst moment for counting bad rows twice, hit every time (no timing guess).

Usage: python -m tests.migration_app.cdc.killable_cdc PLAN
"""

import os
import signal
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.test")
django.setup()

from migration_app.cdc import worker  # noqa: E402
from migration_app.models import MigrationPlan  # noqa: E402


def main() -> None:
    quarantined = {"rows": False}
    real_quarantine, real_advance = worker.changes_quarantine, worker.slots.slot_advance

    def quarantine(**kwargs):
        result = real_quarantine(**kwargs)
        quarantined["rows"] = True
        return result

    def advance(connection, **kwargs):
        if quarantined["rows"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_advance(connection, **kwargs)

    worker.changes_quarantine = quarantine
    worker.slots.slot_advance = advance
    worker.cdc_run(plan=MigrationPlan.objects.get(name=sys.argv[1]), until_idle=True)


if __name__ == "__main__":
    main()
