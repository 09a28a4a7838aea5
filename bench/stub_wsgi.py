"""A DynamoDB stand-in that does (almost) nothing: the floor under every local-endpoint figure.

It answers GetItem, PutItem and BatchWriteItem from a dict, with no validation, conditions, capacity or
indexes, under the same gunicorn setup as ``bench.moto_wsgi``. Timing the raw client against it measures
HTTP on loopback + botocore alone; the difference to moto is moto's own work, so benchmark 8 can say when
moto (not our code, not the client) is the bottleneck. Never a test double: it checks nothing.

    gunicorn bench.stub_wsgi:application --workers 1 --threads 8 --worker-class gthread --bind 127.0.0.1:PORT
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

_items: dict[tuple[str, str], dict[str, Any]] = {}
_lock = threading.Lock()


def _key(table: str, item_or_key: dict[str, Any]) -> tuple[str, str]:
    # The stub does not know key schemas: the first attribute (phone, pk...) stands for the key.
    name = next(iter(item_or_key))
    return table, json.dumps(item_or_key[name], sort_keys=True)


def _get_item(body: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        item = _items.get(_key(body["TableName"], body["Key"]))
    return {"Item": item} if item else {}


def _put_item(body: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        _items[_key(body["TableName"], body["Item"])] = body["Item"]
    return {}


_DISCARD = os.environ.get("BENCH_STUB_DISCARD") == "1"  # a sink: accept batch writes, keep nothing
# A fixed service time per request (ms), as DynamoDB's own latency: the client side is what gets measured.
_SERVICE_SECONDS = float(os.environ.get("BENCH_STUB_SERVICE_MS", "0")) / 1000


def _batch_write_item(body: dict[str, Any]) -> dict[str, Any]:
    if _DISCARD:
        return {"UnprocessedItems": {}}
    with _lock:
        for table, requests in body["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    _items[_key(table, item)] = item
    return {"UnprocessedItems": {}}


_OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "GetItem": _get_item,
    "PutItem": _put_item,
    "BatchWriteItem": _batch_write_item,
}


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    handler = _OPERATIONS.get(operation)
    if _SERVICE_SECONDS:
        time.sleep(_SERVICE_SECONDS)
    if handler is None:
        status, payload = "400 Bad Request", {"__type": "UnknownOperationException", "message": operation}
    else:
        status, payload = "200 OK", handler(body)
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))])
    return [data]
