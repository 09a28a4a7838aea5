"""Run a management command in a subprocess that stops dead in one DynamoDB call, for a SIGKILL there.

Usage: python -m tests.migration_app.killable_command MARKER OPERATION -- COMMAND ARGS...
The first OPERATION call (after it was sent: DynamoDB has done it, the answer is not back) writes MARKER and
hangs, so the test knows where the process is and kills it: no timing guesses.
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
    marker, operation, args = sys.argv[1], sys.argv[2], sys.argv[4:]

    def hook(called, params, send):
        response = send(params)
        if called == operation:
            with open(marker, "w") as handle:
                handle.write("blocked")
            time.sleep(600)  # the test kills us here
        return response

    with fault_injection(hook):
        call_command(*args)


if __name__ == "__main__":
    main()
