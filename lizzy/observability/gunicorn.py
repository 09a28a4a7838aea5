"""gunicorn hooks: ``gunicorn -c python:lizzy.observability.gunicorn``.

Each worker learns its thread count (event streams may take at most half of them, lizzy/stream_slots.py).

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, wiped before start), each worker writes its
metrics to files there and ``/metrics`` sums them; a dead worker's live gauges are removed here.
"""

from __future__ import annotations

import os
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Tell the worker its thread count: event streams may hold at most half (lizzy/stream_slots.py)."""
    os.environ["LIZZY_WORKER_THREADS"] = str(worker.cfg.threads)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
