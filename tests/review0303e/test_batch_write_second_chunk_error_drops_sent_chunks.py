"""``_batch_write_concurrently``: when two chunks fail (an error other than ``BatchWriteIncomplete``), the
chunks submitted after them are still sent, and DynamoDB accepts them, but they are neither counted nor
reported to ``on_chunk``; the first chunk's error is replaced by the second's.

The first failure leaves the ``for`` loop from ``settle`` (``future.result()`` raises: only
``BatchWriteIncomplete`` is caught); the ``finally`` loop settles the next entry, whose error is raised out of
the ``finally`` too: the entries behind it in ``in_flight`` are left there, not cancelled, not settled. The
pool's exit (``shutdown(wait=True)``) runs every one of them. 7b1561c's comment on that loop says "every
chunk already sent is waited for and counted, unless on_chunk refused". Not a regression of 7b1561c (the
``finally`` behaved so before); for today's callers the cost is writes that go out uncounted after the
call has failed (the migration's page, CDC's batch are written again item by item or retried), and the
first error's message surviving only as ``__context__``.

Fix: in ``settle``, catch every exception of ``future.result()`` in the ``finally`` phase (keep the first, go
on settling the rest), or on the first non-``BatchWriteIncomplete`` error cancel the entries not started and
settle (count) the rest before raising the first error.
"""

from __future__ import annotations

import threading

import pytest

from lizzy.dynamodb import DynamoDBError, dynamodb_batch_write
from lizzy.tables import SESSIONS
from tests.fixtures.dynamodb_hooks import client_error, fault_injection


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_chunks_accepted_after_two_failed_chunks_are_reported(dynamodb):
    # given 8 chunks of 25 at concurrency 2 (4 submitted at a time), DynamoDB refusing the first two
    accepted: list[str] = []
    lock = threading.Lock()

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            (requests,) = params["RequestItems"].values()
            first = requests[0]["PutRequest"]["Item"]["phone"]["S"]
            if first in ("+12065550000", "+12065550025"):
                raise client_error("ValidationException", f"refused chunk {first}", operation)
            response = send(params)
            with lock:
                accepted.append(first)
            return response
        return send(params)

    reported = []
    with fault_injection(hook), pytest.raises(DynamoDBError) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=items(200), concurrency=2, on_chunk=reported.append)

    # then every chunk DynamoDB accepted was reported to on_chunk (it fails: 2 accepted, 0 reported), and the
    # error raised is the first chunk's
    assert len(reported) == len(accepted), f"{len(accepted)} chunk(s) accepted, {len(reported)} reported to on_chunk"
    assert "+12065550000" in str(excinfo.value), f"raised: {excinfo.value}"
