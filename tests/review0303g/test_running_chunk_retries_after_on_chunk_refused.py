"""``_batch_write_concurrently`` (73891b1): once ``on_chunk`` refuses to go on (a migration unit's keep-alive
raising ``LeaseLost``), ``settle`` cancels the chunks not started, but a chunk already running goes on with its
own retry loop (``_send_chunk``: ``UnprocessedItems`` / throttling retried up to ``max_attempts``, with
backoff): every retry is a new BatchWriteItem call, sent after the loss was learned. The pool's exit
(``shutdown(wait=True)``) waits for all of those retries. "An HTTP call cannot be taken back", but a retry
is not yet sent when the loss is known.

Promise: a runner that lost its lease sends nothing after it learns.

Fix: give ``_send_chunk`` a stop flag (a ``threading.Event`` set by ``settle`` when ``collect`` raises, checked
before each retry/backoff); a chunk stopped so counts its written part (or raises BatchWriteIncomplete)
and sends nothing more. The same applies to ``BatchWriter`` (``close(cancel=True)``).
"""

from __future__ import annotations

import threading
import time

import pytest

from lizzy.dynamodb import dynamodb_batch_write
from lizzy.tables import SESSIONS
from migration_app.services.runs import LeaseLost
from tests.fixtures.dynamodb_hooks import fault_injection


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_no_retry_of_a_running_chunk_goes_out_after_on_chunk_refused(dynamodb):
    # given 4 chunks at concurrency 2; the second chunk's first call is slow and DynamoDB leaves it all
    # unprocessed (it is retried); on_chunk finds the lease lost at the first chunk that landed
    calls: list[tuple[float, str]] = []
    lock = threading.Lock()
    unprocessed_once: set[str] = set()
    learned: list[float] = []

    def hook(operation, params, send):
        if operation != "BatchWriteItem":
            return send(params)
        ((table, requests),) = params["RequestItems"].items()
        first = requests[0]["PutRequest"]["Item"]["phone"]["S"]
        with lock:
            calls.append((time.monotonic(), first))
        if first == "+12065550025" and first not in unprocessed_once:
            unprocessed_once.add(first)
            time.sleep(0.3)
            return {"UnprocessedItems": {table: requests}}
        return send(params)

    def on_chunk(_result):
        if not learned:
            learned.append(time.monotonic())
        raise LeaseLost("unit 1: lease 1 of w was lost")

    # when the batch is written
    with fault_injection(hook), pytest.raises(LeaseLost):
        dynamodb_batch_write(table=SESSIONS.name, items=items(100), concurrency=2, on_chunk=on_chunk)

    # then no chunk sends a call after the loss was learned (it fails: the second chunk's retry goes out
    # about 0.3 s after on_chunk raised LeaseLost)
    assert learned
    late = [(round(at - learned[0], 3), first) for at, first in calls if at > learned[0] and first in unprocessed_once]
    assert late == [], f"BatchWriteItem retries sent after on_chunk refused (seconds after, chunk): {late}"
