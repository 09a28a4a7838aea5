"""``_batch_write_concurrently`` (73891b1): after a first error (a chunk DynamoDB refused, an item the codec
refused), the drain loop catches *every* ``BaseException`` raised while it waits (``except BaseException:
error = error if error is not None else exc``). A ``KeyboardInterrupt`` (Ctrl-C in ``migrate_to_dynamodb``,
whose units run in the main thread with ``--segments 1``) or a ``SystemExit`` arriving there is dropped: the
drain goes on waiting, and the first error is raised instead. A migration page then takes the chunk's
ValidationException for its cue and rewrites the page item by item (``page_load`` → ``_one_by_one``): the
operator's interrupt turns into more writes. The interrupted chunk itself (popped from ``in_flight``) is
never settled: it lands, but is neither counted nor reported to ``on_chunk``.

Fix: in the drain loop, treat a ``BaseException`` that is not an ``Exception`` (KeyboardInterrupt, SystemExit)
like on_chunk's refusal: cancel the chunks not started, and raise it (``from`` the first error).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from lizzy.dynamodb import dynamodb_batch_write
from lizzy.tables import SESSIONS
from tests.fixtures.dynamodb_hooks import client_error, fault_injection


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


@pytest.fixture
def sigint_raises():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_after_a_refused_chunk_is_the_error_raised(dynamodb, sigint_raises):
    # given 4 chunks at concurrency 2, DynamoDB refusing the first; Ctrl-C pressed while the caller waits for
    # the second (after the first's refusal was seen)
    refused = threading.Event()

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            first = requests[0]["PutRequest"]["Item"]["phone"]["S"]
            if first == "+12065550000":
                refused.set()
                raise client_error("ValidationException", "refused chunk", operation)
            if first == "+12065550025":
                refused.wait(5)
                time.sleep(0.3)  # the caller has settled the refusal and waits for this chunk
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
        return send(params)

    # then the interrupt reaches the caller (it fails: the first chunk's ValidationException is raised, the
    # KeyboardInterrupt swallowed by the drain loop)
    with fault_injection(hook), pytest.raises(KeyboardInterrupt):
        dynamodb_batch_write(table=SESSIONS.name, items=items(100), concurrency=2)
