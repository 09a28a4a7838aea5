"""One low-level DynamoDB client per process, and ``_call``: the one place every API call goes through.

Clients are thread-safe (resources are not): one is created on first use with explicit timeouts, the
``standard`` retry mode and a connection pool sized for our worker threads. ``_call`` records latency
and consumed capacity per table and operation and translates botocore's errors into the product's;
``tests/lizzy/test_iam_policy.py`` reads the operation names passed to it to check ``docs/iam-policy.json``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.serialize import JSONSerializer
from django.conf import settings

from lizzy import metrics
from lizzy.dynamodb.capacity import CAPACITY_OPERATIONS, _record_capacity
from lizzy.dynamodb.errors import _translate

logger = logging.getLogger(__name__)
_clients: dict[str, Any] = {}
_client_lock = threading.Lock()
# Profiles: "default" for requests a user waits on; "scan" for whole-table reads (validation, backups),
# whose pages can take far longer than one GetItem (moto's Scan of 75,000 items: well over 5 s a page);
# "bulk" for BatchWriteItem of items our codec serialized (the default's timeouts, ``_CodecSerializer``).
PROFILES = ("default", "scan", "bulk")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def client_config(profile: str = "default") -> Config:
    """The botocore ``Config`` of one profile: explicit timeouts and retries, never botocore's defaults."""
    scan = profile == "scan"
    return Config(
        parameter_validation=profile != "bulk",  # the codec checked every value (``_CodecSerializer``)
        connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT,
        read_timeout=settings.DYNAMODB_SCAN_READ_TIMEOUT if scan else settings.DYNAMODB_READ_TIMEOUT,
        retries={
            "mode": "standard",
            "max_attempts": settings.DYNAMODB_SCAN_MAX_ATTEMPTS if scan else settings.DYNAMODB_MAX_ATTEMPTS,
        },
        max_pool_connections=settings.DYNAMODB_MAX_POOL_CONNECTIONS,
        tcp_keepalive=True,
    )


class _CodecSerializer(JSONSerializer):
    """botocore's JSON serializer for requests whose AttributeValues our codec built: the body is one
    ``json.dumps`` of the parameters as they are, binary values base64-encoded as botocore encodes them.

    ``codec.serialize_checked`` already gave each item DynamoDB's wire form, its values checked (types,
    numbers, sizes). botocore would validate it, then rebuild it value by value, walking every attribute of
    every item in Python (26 + 42 µs of CPU for an item of 7 attributes, ``ParamValidator`` +
    ``JSONSerializer`` timed on 400 chunks of 25; a pass-through of the plain AttributeValues still walked
    12 µs an item). Here the walk is the C encoder's. The request's method, headers and host prefix are
    botocore's own (its serializer run on no parameters); only the body is ours, byte for byte the body
    botocore would send (``tests/lizzy/test_codec_serializer.py`` compares the two on generated items).
    """

    def serialize_to_request(self, parameters, operation_model):  # noqa: ANN001, ANN201 - botocore's signature
        serialized = super().serialize_to_request({}, operation_model)
        serialized["body"] = json.dumps(parameters, default=_base64_blob).encode(self.DEFAULT_ENCODING)
        host_prefix = self._expand_host_prefix(parameters, operation_model)
        if host_prefix is not None:
            serialized["host_prefix"] = host_prefix
        return serialized


def _base64_blob(value: object) -> str:
    """A binary value (``B``, a member of ``BS``) as botocore's JSON protocol sends it: base64 text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"a {type(value).__name__} is not an AttributeValue member the codec makes")


def _client_kwargs(profile: str = "default") -> dict[str, Any]:
    endpoint = settings.AWS_ENDPOINT_URL_DYNAMODB
    kwargs: dict[str, Any] = {"region_name": settings.AWS_REGION, "config": client_config(profile)}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    session = boto3.session.Session()
    if endpoint and urlparse(endpoint).hostname in _LOOPBACK_HOSTS and session.get_credentials() is None:
        # A local endpoint accepts any signature; these are placeholders, not secrets.
        kwargs["aws_access_key_id"] = "lizzy-local"
        kwargs["aws_secret_access_key"] = "lizzy-local"  # noqa: S105
    return {"session": session, **kwargs}


def get_client(profile: str = "default") -> Any:
    """The process's DynamoDB client of one profile (``PROFILES``), created on first use."""
    client = _clients.get(profile)
    if client is None:
        with _client_lock:
            client = _clients.get(profile)
            if client is None:
                kwargs = _client_kwargs(profile)
                session = kwargs.pop("session")
                client = session.client("dynamodb", **kwargs)
                if profile == "bulk":
                    client._serializer = _CodecSerializer()  # botocore has no public way to choose one
                _clients[profile] = client
    return client


def _forget_after_fork() -> None:
    """In a forked child: none of the parent's clients (their pools hold the parent's sockets), and a lock of
    its own (the parent's may have been held by a thread that does not exist here)."""
    global _client_lock  # noqa: PLW0603 - replaced, not shared, in the child
    _client_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def clients_warm_up(**_: object) -> None:
    """Create this process's clients of the profiles a request or a migration unit uses, before any needs one.

    Connected to Celery's ``worker_process_init`` (``lizzy.apps``): a pool process builds its clients (botocore
    loads and parses the service model, 50 ms of CPU a client) when it starts, not inside its first task, where
    it held up the unit's first writes (docs/MIGRATIONS.md, "Running on many machines"). A client the parent
    made before the fork is forgotten in the child (``_forget_after_fork``): its connection pool must not be
    shared. Nothing is sent.
    """
    for profile in ("default", "bulk"):
        try:
            get_client(profile)
        except Exception:  # a misconfigured endpoint fails the first task that needs it, with its own error
            logger.warning("could not create the DynamoDB client %r ahead of the first task", profile, exc_info=True)


def reset_client() -> None:
    """Forget the cached clients (tests entering moto's mock, or a changed endpoint)."""
    with _client_lock:
        _clients.clear()
    _key_names_cache.clear()


# The key attribute names of each table (``tables.table_key_names``): per endpoint, so forgotten with the client.
_key_names_cache: dict[str, tuple[str, ...]] = {}


def _call(operation: str, /, *, table: str = "-", profile: str = "default", **params: Any) -> dict[str, Any]:
    """Call one DynamoDB API operation: latency, capacity and errors recorded, errors translated.

    Tests observe and alter calls with handlers on the client's botocore events
    (``tests/fixtures/dynamodb_hooks.py``), never through a check here.
    """
    if operation in CAPACITY_OPERATIONS:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
    method = getattr(get_client(profile), _snake(operation))
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
