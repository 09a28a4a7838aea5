"""Per-tier latencies of the session stores: a Prometheus histogram, and the last few hundred samples
per tier for the p50/p95 the admin shows (``selectors.session_store_stats``)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lizzy import metrics

# Label children looked up once: ``labels()`` validates and locks on every call, which a hot-tier hit
# (tens of µs in all) notices (docs/BENCHMARKS.md, benchmark 2).
_tier_histograms: dict[tuple[str, str], Any] = {}


@contextmanager
def timed(tier: str, operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        histogram = _tier_histograms.get((tier, operation))
        if histogram is None:
            histogram = _tier_histograms.setdefault(
                (tier, operation), metrics.SESSION_TIER_LATENCY.labels(tier, operation)
            )
        histogram.observe(elapsed)
        latency_samples.record(tier, elapsed)


class LatencySamples:
    """The last few hundred latencies per tier, for p50/p95 on the admin page (Prometheus has the rest)."""

    SIZE = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}

    def record(self, tier: str, value: float) -> None:
        samples = self._samples.get(tier)
        if samples is None:
            with self._lock:
                samples = self._samples.setdefault(tier, deque(maxlen=self.SIZE))
        samples.append(value)  # deque.append is atomic; maxlen drops the oldest

    def percentiles(self) -> dict[str, dict[str, float | None]]:
        with self._lock:
            out: dict[str, dict[str, float | None]] = {}
            for tier, samples in list(self._samples.items()):
                ordered = sorted(samples.copy())  # copy(): atomic, unlike iterating a deque being appended to
                out[tier] = {
                    "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3) if ordered else None,
                    "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3)
                    if ordered
                    else None,
                    "samples": len(ordered),
                }
            return out


latency_samples = LatencySamples()
