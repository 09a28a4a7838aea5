"""Run the CDC worker in a subprocess that SIGKILLs itself after it quarantined a bad change, before it
advances the slot past it (a binlog stream: before it confirms the position in the stream's row): the worst
moment for counting bad rows twice, hit every time (no timing guess).

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
    real_quarantine, real_open = worker.changes_quarantine, worker.capture_open

    def quarantine(**kwargs):
        result = real_quarantine(**kwargs)
        quarantined["rows"] = True
        return result

    def capture_open(**kwargs):
        capture = real_open(**kwargs)
        real_advance = capture.advance

        def advance(**advance_kwargs):
            if quarantined["rows"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_advance(**advance_kwargs)

        capture.advance = advance
        return capture

    worker.changes_quarantine = quarantine
    worker.capture_open = capture_open
    worker.cdc_run(plan=MigrationPlan.objects.get(name=sys.argv[1]), until_idle=True)


if __name__ == "__main__":
    main()
