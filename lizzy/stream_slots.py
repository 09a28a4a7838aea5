"""Bounds on long-lived responses (server-sent event streams): per user, per process and in total.

A stream holds one gunicorn thread for as long as it is open. Without bounds, as many streams as a
deployment has threads (16 in the documented one) starve ``/healthz`` and the SMS webhook. Three bounds,
each refusing with 429 and ``Retry-After``:

- **per process**: at most ``LIZZY_EVENT_STREAMS_PER_PROCESS`` streams in one worker. Unset, it is half
  the worker's threads when gunicorn runs with ``-c python:lizzy.observability.gunicorn`` (which tells the
  worker its thread count), else 1: a worker always keeps threads for the webhook and the probes;
- **per user**: ``LIZZY_EVENT_STREAMS_PER_USER`` (2; a browser tab reconnecting plus one);
- **in total**: ``LIZZY_EVENT_STREAMS_TOTAL`` (32) across every process, as leases in the shared cache
  (Redis, or the database) that expire by themselves shortly after the stream's own end, so a killed
  process cannot leak them for long.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches
from rest_framework.exceptions import Throttled

SLOT_KEY = "lizzy:stream-slot:{scope}:{index}"
LEASE_MARGIN_SECONDS = 30  # a lease outlives its stream by this much, then expires if never released
WORKER_THREADS_ENV = "LIZZY_WORKER_THREADS"  # set by lizzy.observability.gunicorn in each worker
ERR_TOO_MANY = "Too many event streams open ({scope}); close one or try again in a minute."
RETRY_SECONDS = 30

_process_lock = threading.Lock()
_process_open = [0]


def per_process_limit() -> int:
    configured = settings.LIZZY_EVENT_STREAMS_PER_PROCESS
    if configured is not None:
        return configured
    threads = os.environ.get(WORKER_THREADS_ENV)
    if threads and threads.isdigit():
        return int(threads) // 2
    return 1


@dataclass
class StreamLease:
    keys: list[str] = field(default_factory=list)
    token: str = ""
    in_process: bool = False
    released: bool = False

    def release(self) -> None:
        """Give the slots back (idempotent): on the stream's end, the client's disconnect or close()."""
        if self.released:
            return
        self.released = True
        if self.in_process:
            with _process_lock:
                _process_open[0] -= 1
        cache = caches[settings.SHARED_CACHE]
        mine = [key for key, value in cache.get_many(self.keys).items() if value == self.token]
        if mine:
            cache.delete_many(mine)


def _take(cache, scope: str, limit: int, token: str, seconds: int) -> str | None:  # noqa: ANN001
    keys = [SLOT_KEY.format(scope=scope, index=index) for index in range(limit)]
    taken = cache.get_many(keys)
    for slot in keys:
        if slot not in taken and cache.add(slot, token, timeout=seconds):
            return slot
    return None


def stream_lease_acquire(*, user_id: object, seconds: float) -> StreamLease:
    """A lease on one stream slot of each bound, or ``Throttled`` (429) naming the bound that is full."""
    lease = StreamLease(token=secrets.token_hex(8))
    with _process_lock:
        if _process_open[0] >= per_process_limit():
            raise Throttled(wait=RETRY_SECONDS, detail=ERR_TOO_MANY.format(scope="this server process"))
        _process_open[0] += 1
        lease.in_process = True
    cache = caches[settings.SHARED_CACHE]
    timeout = int(seconds) + LEASE_MARGIN_SECONDS
    try:
        for scope, limit in (
            (f"user:{user_id}", settings.LIZZY_EVENT_STREAMS_PER_USER),
            ("total", settings.LIZZY_EVENT_STREAMS_TOTAL),
        ):
            slot = _take(cache, scope, limit, lease.token, timeout)
            if slot is None:
                shown = "for your user" if scope.startswith("user:") else "on the whole service"
                raise Throttled(wait=RETRY_SECONDS, detail=ERR_TOO_MANY.format(scope=shown))
            lease.keys.append(slot)
    except BaseException:
        lease.release()
        raise
    return lease
