"""gunicorn hooks for Prometheus multiprocess mode: ``gunicorn -c python:lizzy.observability.gunicorn``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, wiped before start), each worker writes its
metrics to files there and ``/metrics`` sums them; a dead worker's live gauges are removed here.
"""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
