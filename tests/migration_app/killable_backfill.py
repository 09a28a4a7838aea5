"""Run ``migrate_to_dynamodb`` in a subprocess that stops dead in the middle of a backfill.

Usage: python -m tests.migration_app.killable_backfill MARKER BLOCK_AT -- migrate_to_dynamodb ARGS...
The BLOCK_AT-th BatchWriteItem call writes MARKER and then hangs, so the test knows the worker is
mid-segment (earlier chunks checkpointed, this one not) and can SIGKILL it: no timing guesses.
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.test")
django.setup()

from django.core.management import call_command  # noqa: E402

from tests.fixtures.dynamodb_hooks import fault_injection  # noqa: E402


def main() -> None:
    marker, block_at, args = sys.argv[1], int(sys.argv[2]), sys.argv[5:]
    calls = {"n": 0}

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            calls["n"] += 1
            if calls["n"] == block_at:
                with open(marker, "w") as handle:
                    handle.write("blocked")
                time.sleep(600)  # the test kills us here
        return send(params)

    with fault_injection(hook):
        call_command("migrate_to_dynamodb", *args)


if __name__ == "__main__":
    main()
