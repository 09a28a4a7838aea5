"""The circuit breaker in front of the session Redis (the cached modes and change events use it)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

from lizzy import metrics

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """closed → (N consecutive failures) → open → (T seconds) → half-open → one trial → closed/open.

    Per process: each web or worker process learns Redis is away from its own calls, within N of them.
    ``clock`` is injectable so tests move time instead of sleeping.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
    _STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

    def __init__(
        self,
        name: str,
        *,
        threshold: int | None = None,
        reset_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._gauge = metrics.BREAKER_STATE.labels(name)
        self._gauge.set(0)

    @property
    def threshold(self) -> int:
        return self._threshold or settings.LIZZY_BREAKER_THRESHOLD

    @property
    def reset_seconds(self) -> float:
        return self._reset_seconds if self._reset_seconds is not None else settings.LIZZY_BREAKER_RESET_SECONDS

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self.clock() - self._opened_at >= self.reset_seconds:
                return self.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May we call Redis now? In half-open, only one trial call at a time."""
        with self._lock:
            if self._state == self.CLOSED:
                return True
            if self._state == self.OPEN and self.clock() - self._opened_at < self.reset_seconds:
                return False
            if self._trial_in_flight:
                return False
            self._set(self.HALF_OPEN)
            self._trial_in_flight = True
            return True

    def success(self) -> None:
        if self._state == self.CLOSED and not self._failures:
            return  # the common case on every request: nothing to change, no lock, no gauge write
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(self.CLOSED)

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state == self.HALF_OPEN or self._failures >= self.threshold:
                if self._state != self.OPEN:
                    logger.warning("circuit breaker %s opened after %s failure(s)", self.name, self._failures)
                self._opened_at = self.clock()
                self._set(self.OPEN)

    def abandon(self) -> None:
        """An allowed call did not reach Redis after all (nothing learnt): let the next call be the trial."""
        with self._lock:
            self._trial_in_flight = False

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(self.CLOSED)

    def _set(self, state: str) -> None:
        if state != self._state:
            self._gauge.set(self._STATE_VALUE[state])
        self._state = state


redis_breaker = CircuitBreaker("session_redis")
