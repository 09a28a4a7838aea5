"""A real ``celery worker`` (solo pool) that can be made to stop dead in the middle of a task.

Usage: python -m tests.faults.killable_worker QUEUES
With LIZZY_TEST_BLOCK_MARKER and LIZZY_TEST_BLOCK_AT set, the BLOCK_AT-th write call (BatchWriteItem, or
the operation LIZZY_TEST_BLOCK_OP names: the flush writes with PutItem) writes
the marker file and hangs, so the test knows the task is mid-write and SIGKILLs the worker: no timing
guesses. The solo pool runs the task in this process, so the SIGKILL takes the task with it.
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
django.setup()

from lizzy.celery import app  # noqa: E402
from tests.fixtures.dynamodb_hooks import fault_injection  # noqa: E402


def main() -> None:
    marker = os.environ.get("LIZZY_TEST_BLOCK_MARKER")
    block_at = int(os.environ.get("LIZZY_TEST_BLOCK_AT", "0"))
    operation_blocked = os.environ.get("LIZZY_TEST_BLOCK_OP", "BatchWriteItem")
    calls = {"n": 0}

    def hook(operation, params, send):
        if marker and operation == operation_blocked:
            calls["n"] += 1
            if calls["n"] == block_at:
                with open(marker, "w") as handle:
                    handle.write("blocked")
                time.sleep(600)  # the test kills us here
        return send(params)

    with fault_injection(hook):
        app.worker_main(
            ["worker", "--pool", "solo", "-Q", sys.argv[1], "-l", "warning", "--without-gossip", "--without-mingle"]
        )


if __name__ == "__main__":
    main()
