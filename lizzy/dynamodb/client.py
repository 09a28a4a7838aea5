"""One low-level DynamoDB client per process, and ``_call``: the one place every API call goes through.

Clients are thread-safe (resources are not): one is created on first use with explicit timeouts, the
``standard`` retry mode and a connection pool sized for our worker threads. ``_call`` records latency
and consumed capacity per table and operation and translates botocore's errors into the product's;
``tests/lizzy/test_iam_policy.py`` reads the operation names passed to it to check ``docs/iam-policy.json``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from lizzy import metrics
from lizzy.dynamodb.capacity import CAPACITY_OPERATIONS, _record_capacity
from lizzy.dynamodb.errors import _translate

_client = None
_client_lock = threading.Lock()
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _client_kwargs() -> dict[str, Any]:
    endpoint = settings.AWS_ENDPOINT_URL_DYNAMODB
    kwargs: dict[str, Any] = {
        "region_name": settings.AWS_REGION,
        "config": Config(
            connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT,
            read_timeout=settings.DYNAMODB_READ_TIMEOUT,
            retries={"mode": "standard", "max_attempts": settings.DYNAMODB_MAX_ATTEMPTS},
            max_pool_connections=settings.DYNAMODB_MAX_POOL_CONNECTIONS,
            tcp_keepalive=True,
        ),
    }
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    session = boto3.session.Session()
    if endpoint and urlparse(endpoint).hostname in _LOOPBACK_HOSTS and session.get_credentials() is None:
        # A local endpoint accepts any signature; these are placeholders, not secrets.
        kwargs["aws_access_key_id"] = "lizzy-local"
        kwargs["aws_secret_access_key"] = "lizzy-local"  # noqa: S105
    return {"session": session, **kwargs}


def get_client() -> Any:
    """The process's DynamoDB client, created on first use."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                kwargs = _client_kwargs()
                session = kwargs.pop("session")
                _client = session.client("dynamodb", **kwargs)
    return _client


def reset_client() -> None:
    """Forget the cached client (tests entering moto's mock, or a changed endpoint)."""
    global _client
    with _client_lock:
        _client = None
    _key_names_cache.clear()


# The key attribute names of each table (``tables.table_key_names``): per endpoint, so forgotten with the client.
_key_names_cache: dict[str, tuple[str, ...]] = {}
_call_listeners: list[list[tuple[str, str]]] = []

# A fault hook wraps every call: hook(operation, params, send) -> response. ``send(params)`` makes the
# real call; a hook may alter the params, the response, or raise botocore's ClientError. It exists so
# that tests and drills can inject UnprocessedItems and throttling against any endpoint.
FaultHook = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]], dict[str, Any]]
_fault_hook: FaultHook | None = None


@contextmanager
def fault_injection(hook: FaultHook) -> Iterator[None]:
    """Route every DynamoDB call through ``hook`` while the block runs (drills and tests)."""
    global _fault_hook
    previous, _fault_hook = _fault_hook, hook
    try:
        yield
    finally:
        _fault_hook = previous


def client_error(code: str, message: str, operation: str) -> Exception:
    """A botocore ClientError as DynamoDB would send it (for fault hooks: they must not import botocore)."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@contextmanager
def record_calls() -> Iterator[list[tuple[str, str]]]:
    """Collect (operation, table) for every DynamoDB call made while the block runs, in any thread."""
    calls: list[tuple[str, str]] = []
    _call_listeners.append(calls)
    try:
        yield calls
    finally:
        _call_listeners.remove(calls)


def _call(operation: str, /, *, table: str = "-", **params: Any) -> dict[str, Any]:
    """Call one DynamoDB API operation: latency, capacity and errors recorded, errors translated."""
    if operation in CAPACITY_OPERATIONS:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
    method = getattr(get_client(), _snake(operation))
    for listener in list(_call_listeners):
        listener.append((operation, table))
    started = time.perf_counter()
    try:
        hook = _fault_hook
        response = hook(operation, params, lambda sent: method(**sent)) if hook else method(**params)
    except (ClientError, BotoCoreError) as exc:
        raise _translate(operation, table, exc) from exc
    finally:
        metrics.DYNAMODB_LATENCY.labels(operation, table).observe(time.perf_counter() - started)
    if "ConsumedCapacity" in response:
        _record_capacity(operation, response["ConsumedCapacity"])
    return response


def _snake(operation: str) -> str:
    return "".join("_" + char.lower() if char.isupper() else char for char in operation).lstrip("_")
