"""Benchmark 3's middleware: how long each request spent inside DynamoDB and Redis calls.

It wraps the two choke points every store call goes through (``lizzy.dynamodb.client._call`` and
``lizzy.redis.redis_call``) and answers the sum in an ``X-Bench-Store-Ms`` header, so the benchmark can
subtract each request's own store time instead of an average. Loaded only by ``bench.settings``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

import lizzy.dynamodb.client
import lizzy.redis

_state = threading.local()


def _timed(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _state.seconds = getattr(_state, "seconds", 0.0) + time.perf_counter() - started

    return wrapper


lizzy.dynamodb.client._call = _timed(lizzy.dynamodb.client._call)
lizzy.redis.redis_call = _timed(lizzy.redis.redis_call)


class StoreTimerMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        _state.seconds = 0.0
        response = self.get_response(request)
        response["X-Bench-Store-Ms"] = f"{_state.seconds * 1000:.3f}"
        return response
