"""Review of 2d08a17 (minor, API promise): a chunk queued in a ``BatchWriter`` whose ``stop`` is set before it
starts still sends its first call and returns normally.

Promise broken (``BatchWriter.submit``'s docstring): "once it is set, the chunk, queued or running, sends no
retry more (its future raises ``BatchWriteIncomplete`` at once, backoff or not)".

``_send_chunk`` looks at ``stop`` only after a call came back with items left, so a queued chunk started after
its stop sends a whole BatchWriteItem (25 items written, after the caller said stop). The migration pipeline
cancels its queued futures before/with the stop (``_UnitPipeline.close``, ``_Chain.keep_alive``), so it is not
reached there today; any other caller relying on the docstring is.

Suggested fix: in ``BatchWriter._send`` (or at the top of ``_send_chunk``) raise ``BatchWriteIncomplete``
(unwritten=len(requests), written=0) when ``stop`` is already set; or reword the docstring ("running").
"""

from __future__ import annotations

import threading
import time

from lizzy.dynamodb import BatchWriteIncomplete, BatchWriter, batch_write_chunks
from lizzy.tables import SESSIONS
from tests.fixtures.dynamodb_hooks import fault_injection


def items(count, prefix):
    return [{"phone": f"{prefix}{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def test_a_queued_chunk_whose_stop_is_set_sends_nothing(dynamodb):
    sent: list[str] = []

    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            ((_table, requests),) = params["RequestItems"].items()
            sent.append(requests[0]["PutRequest"]["Item"]["phone"]["S"])
            time.sleep(0.3)
        return send(params)

    writer, theirs, mine = BatchWriter(concurrency=1), threading.Event(), threading.Event()
    with fault_injection(hook):
        busy = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(25, "+1503555"))[0], table=SESSIONS.name, stop=theirs
        )
        queued = writer.submit(
            batch_write_chunks(table=SESSIONS.name, items=items(25, "+1206555"))[0], table=SESSIONS.name, stop=mine
        )
        time.sleep(0.1)
        mine.set()  # while it is still queued behind the other caller's call
        busy.result(timeout=5)
        try:
            outcome = queued.result(timeout=5)
        except BatchWriteIncomplete:
            outcome = None
    writer.close()
    assert "+12065550000" not in sent, f"the stopped queued chunk was sent after its stop: {outcome}"
    assert outcome is None
