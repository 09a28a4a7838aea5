"""One low-level DynamoDB client per process, and ``_call``: the one place every API call goes through.

Clients are thread-safe (resources are not): one is created on first use with explicit timeouts, the
``standard`` retry mode and a connection pool sized for our worker threads. ``_call`` records latency
and consumed capacity per table and operation and translates botocore's errors into the product's;
``tests/lizzy/test_iam_policy.py`` reads the operation names passed to it to check ``docs/iam-policy.json``.
"""

from __future__ import annotations

import threading
import time
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


def _call(operation: str, /, *, table: str = "-", **params: Any) -> dict[str, Any]:
    """Call one DynamoDB API operation: latency, capacity and errors recorded, errors translated.

    Tests observe and alter calls with handlers on the client's botocore events
    (``tests/fixtures/dynamodb_hooks.py``), never through a check here.
    """
    if operation in CAPACITY_OPERATIONS:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
    method = getattr(get_client(), _snake(operation))
    started = time.perf_counter()
    try:
        response = method(**params)
    except (ClientError, BotoCoreError) as exc:
        raise _translate(operation, table, exc) from exc
    finally:
        metrics.DYNAMODB_LATENCY.labels(operation, table).observe(time.perf_counter() - started)
    if "ConsumedCapacity" in response:
        _record_capacity(operation, response["ConsumedCapacity"])
    return response


def _snake(operation: str) -> str:
    return "".join("_" + char.lower() if char.isupper() else char for char in operation).lstrip("_")
