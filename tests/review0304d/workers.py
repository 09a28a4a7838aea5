"""Start tests.review0304d.probe_worker against a broker of its own and read what its probes wrote."""

from __future__ import annotations

import functools

from tests.fixtures.celery_probe import lines, probe_worker

__all__ = ["lines", "probe_worker"]

probe_worker = functools.partial(probe_worker, module="tests.review0304d.probe_worker", queue="r0304d-probe")
