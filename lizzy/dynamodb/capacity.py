"""Consumed capacity and error listeners: what every DynamoDB call cost, and who wants to hear of failures.

``client._call`` asks for ``ReturnConsumedCapacity`` on the operations in ``CAPACITY_OPERATIONS`` and
hands what the endpoint reports to ``_record_capacity``; ``errors._translate`` tells the listeners about
every failed or throttled request (the ops console's alarms, seed 000's CloudWatch alarm classes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from lizzy import metrics

logger = logging.getLogger(__name__)

CAPACITY_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchWriteItem", "BatchGetItem"}
)

_capacity_lock = threading.Lock()
_capacity: dict[tuple[str, str], dict[str, float]] = {}
# Called as listener(kind, operation, table, code) with kind "system", "user" or "throttled" (the
# CloudWatch alarm classes of seed 000); the ops console records them with timestamps for its alarms.
_error_listeners: list[Callable[[str, str, str, str], None]] = []
# Called with no arguments after units were recorded: the cost ledger persists from every process this way
# (web, Celery children, management commands), not only where a request or a beat task happens to flush.
_capacity_listeners: list[Callable[[], None]] = []


def add_capacity_listener(listener: Callable[[], None]) -> None:
    """Be told (no arguments) after every call whose consumed capacity was recorded (idempotent)."""
    if listener not in _capacity_listeners:
        _capacity_listeners.append(listener)


def add_error_listener(listener: Callable[[str, str, str, str], None]) -> None:
    """Be told about every failed or throttled DynamoDB request (idempotent per listener)."""
    if listener not in _error_listeners:
        _error_listeners.append(listener)


def _notify_error(kind: str, operation: str, table: str, code: str) -> None:
    for listener in list(_error_listeners):
        try:
            listener(kind, operation, table, code)
        except Exception:  # a listener must never turn into the caller's error
            logger.exception("DynamoDB error listener failed")


def _entries(operation: str, consumed: Any) -> Iterator[tuple[str, float, float]]:
    """(table, read units, write units) of each entry of a response's ``ConsumedCapacity``."""
    for entry in consumed if isinstance(consumed, list) else [consumed]:
        if not entry:
            continue
        read = float(entry.get("ReadCapacityUnits", 0) or 0)
        write = float(entry.get("WriteCapacityUnits", 0) or 0)
        total = float(entry.get("CapacityUnits", 0) or 0)
        if not read and not write and total:
            # Endpoints that report only a total: reads and writes are told apart by the operation.
            if operation in {"GetItem", "Query", "Scan", "BatchGetItem"}:
                read = total
            else:
                write = total
        yield entry.get("TableName", "?"), read, write


def write_units_of(operation: str, consumed: Any, *, table: str) -> float:
    """The write units one response's ``ConsumedCapacity`` reports for ``table`` (0 when it reports none).

    What a caller counts for its own calls (a migration unit's ``write_units``): the process-wide totals
    of ``consumed_capacity`` mix every thread's calls and are reset by each flush to the cost ledger.
    """
    return sum(write for name, _read, write in _entries(operation, consumed) if name == table)


def _record_capacity(operation: str, consumed: Any) -> None:
    for table, read, write in _entries(operation, consumed):
        with _capacity_lock:
            bucket = _capacity.setdefault((table, operation), {"read": 0.0, "write": 0.0, "calls": 0})
            bucket["read"] += read
            bucket["write"] += write
            bucket["calls"] += 1
        if read:
            metrics.DYNAMODB_CONSUMED.labels(table, operation, "read").inc(read)
        if write:
            metrics.DYNAMODB_CONSUMED.labels(table, operation, "write").inc(write)
    for listener in list(_capacity_listeners):
        try:
            listener()
        except Exception:  # the ledger must never turn into the caller's error
            logger.exception("DynamoDB capacity listener failed")


def consumed_capacity(*, reset: bool = False) -> dict[tuple[str, str], dict[str, float]]:
    """Consumed read/write units per (table, operation) since start (or the last reset)."""
    with _capacity_lock:
        snapshot = {key: dict(value) for key, value in _capacity.items()}
        if reset:
            _capacity.clear()
    return snapshot
