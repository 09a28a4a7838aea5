"""Start ``migrate_to_dynamodb`` in a subprocess and SIGKILL it in the middle of a BatchWriteItem call."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kill_during_write(
    *, command: list[str], env: dict[str, str], marker: Path, call: int = 5, ready: Callable[[], bool] | None = None
) -> None:
    """Run ``command`` (manage.py arguments) until its ``call``-th BatchWriteItem hangs, then SIGKILL it there.

    The earlier calls went through (and whatever they checkpointed stays); that one never completes. No timing
    guesses: tests/migration_app/killable_backfill.py writes ``marker`` as the call starts and then sleeps;
    ``ready`` (polled after that) waits for what the test needs to see first, for example the checkpoint of
    the pages accepted before the hung call (the engine checkpoints them while later chunks are in flight).
    """
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.migration_app.killable_backfill", str(marker), str(call), "--", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"the worker never reached BatchWriteItem call {call}"
        time.sleep(0.05)
    while ready is not None and not ready():
        assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the worker never got ready to be killed"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
