"""BatchGetItem and BatchWriteItem: chunking, duplicate keys, retries with backoff, concurrency."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lizzy import metrics
from lizzy.dynamodb import client
from lizzy.dynamodb.capacity import _notify_error, write_units_of
from lizzy.dynamodb.codec import deserialize_item, item_size, serialize_checked, serialize_item
from lizzy.dynamodb.errors import BatchWriteIncomplete, DuplicateKeysInBatch, DynamoDBThrottled
from lizzy.dynamodb.tables import table_key_names

BATCH_WRITE_MAX_ITEMS = 25  # DynamoDB's BatchWriteItem maximum requests per call
BATCH_WRITE_MAX_BYTES = 16 * 1024 * 1024  # DynamoDB's BatchWriteItem maximum request size
BATCH_GET_MAX_KEYS = 100  # DynamoDB's BatchGetItem maximum keys per call
BATCH_MAX_ATTEMPTS = 10
BATCH_BACKOFF_BASE_SECONDS = 0.05
BATCH_BACKOFF_CAP_SECONDS = 5.0

ERR_BATCH_INCOMPLETE = "{count} item(s) were not written to {table} after {attempts} attempts."
ERR_DUPLICATE_KEYS = "{count} item(s) in one batch for {table} share a key with another item; batch not sent."


def dynamodb_batch_get(
    *, table: str, keys: list[Mapping[str, Any]], consistent: bool = False, attributes: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100 keys, retrying UnprocessedKeys with backoff.

    ``attributes`` projects the items (key + a version, say): the endpoint then reads, sends and we
    parse a few bytes per item instead of whole sessions.
    """
    found: list[dict[str, Any]] = []
    projection: dict[str, Any] = {}
    if attributes:
        names = {f"#a{index}": name for index, name in enumerate(attributes)}
        projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
        pending: dict[str, Any] = {
            table: {
                "Keys": [serialize_item(k) for k in keys[start : start + BATCH_GET_MAX_KEYS]],
                "ConsistentRead": consistent,
                **projection,
            }
        }
        for attempt in range(BATCH_MAX_ATTEMPTS):
            response = client._call("BatchGetItem", table=table, RequestItems=pending)
            found.extend(deserialize_item(item) for item in response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(backoff_delay(attempt))
        else:
            unread = len(pending.get(table, {}).get("Keys", []))
            raise DynamoDBThrottled(
                f"{unread} key(s) of {table} could not be read after {BATCH_MAX_ATTEMPTS} attempts."
            )
    return found


@dataclass
class BatchWriteResult:
    written: int = 0
    calls: int = 0
    unprocessed_retries: int = 0
    throttle_retries: int = 0
    bytes: int = 0
    write_units: float = 0.0  # as the responses' ConsumedCapacity reported them (0 where an endpoint reports none)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: BatchWriteResult) -> None:
        self.written += other.written
        self.write_units += other.write_units
        self.calls += other.calls
        self.unprocessed_retries += other.unprocessed_retries
        self.throttle_retries += other.throttle_retries
        self.bytes += other.bytes
        self.duplicates.extend(other.duplicates)


def spent_of(exc: BaseException | None) -> BatchWriteResult | None:
    """What the BatchWriteItem calls made before ``exc`` was raised consumed (``write_units``, ``calls``, retries:
    paid whether or not their items stand), or None. Set on a ``BatchWriteIncomplete`` and on any error a chunk
    raised after its first call; ``dynamodb_batch_write`` (concurrent) sets the sum of its failed chunks' on the
    error it raises. Whoever handles such an error (counts it, or swallows it and goes on) counts this once."""
    return getattr(exc, "spent", None)


def _spent_add(total: BatchWriteResult, exc: BaseException | None) -> None:
    spent = spent_of(exc)
    if spent is not None:
        total.merge(spent)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter")."""
    return random.uniform(0, min(BATCH_BACKOFF_CAP_SECONDS, BATCH_BACKOFF_BASE_SECONDS * (2**attempt)))  # noqa: S311


_key_names_cache: dict[str, tuple[str, ...]] = {}


def _key_of(request: dict[str, Any], key_names: tuple[str, ...]) -> tuple[Any, ...]:
    # Key attributes are scalars ({"S": text}, {"N": text} or {"B": bytes}): their items are hashable.
    body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
    return tuple(tuple(body[name].items()) if name in body else None for name in key_names)


def _chunks(requests: Iterable[tuple[dict[str, Any], int]]) -> Iterator[list[tuple[dict[str, Any], int]]]:
    chunk: list[tuple[dict[str, Any], int]] = []
    size = 0
    for request, request_size in requests:
        if chunk and (len(chunk) == BATCH_WRITE_MAX_ITEMS or size + request_size > BATCH_WRITE_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((request, request_size))
        size += request_size
    if chunk:
        yield chunk


def dynamodb_batch_write(
    *,
    table: str,
    items: Iterable[Mapping[str, Any]] = (),
    delete_keys: Iterable[Mapping[str, Any]] = (),
    key_names: tuple[str, ...] | None = None,
    on_duplicate: str = "raise",
    max_attempts: int = BATCH_MAX_ATTEMPTS,
    on_chunk: Callable[[BatchWriteResult], None] | None = None,
    concurrency: int = 1,
) -> BatchWriteResult:
    """Write items (and deletes) with BatchWriteItem, 25 requests and at most 16 MB per call.

    Items stream through: at most one chunk is held at a time (``concurrency`` > 1: at most
    2 × concurrency, sent by that many threads, so our serialization overlaps the endpoint's work and
    the calls' latencies overlap each other). ``UnprocessedItems`` and throttling errors are retried
    with exponential backoff and jitter; after ``max_attempts`` a ``BatchWriteIncomplete`` names how
    many items were not written. Two requests with the same key in one chunk are refused by DynamoDB,
    so they are caught first: ``on_duplicate="raise"`` refuses the chunk, ``"skip"`` reports the later
    duplicates in ``result.duplicates`` and sends the rest.
    """
    key_names = key_names or table_key_names(table)

    def requests() -> Iterator[tuple[dict[str, Any], int]]:
        for item in items:
            wire, size = serialize_checked(item)
            yield {"PutRequest": {"Item": wire}}, size
        for key in delete_keys:
            yield {"DeleteRequest": {"Key": serialize_item(key)}}, item_size(key)

    def prepared() -> Iterator[tuple[list[dict[str, Any]], int, list[dict[str, Any]]]]:
        for chunk in _chunks(requests()):
            unique, duplicates = _unique_requests(chunk, key_names)
            if duplicates and on_duplicate == "raise":
                raise DuplicateKeysInBatch(
                    ERR_DUPLICATE_KEYS.format(count=len(duplicates), table=table), details={"keys": duplicates[:10]}
                )
            yield unique, sum(size for _request, size in chunk), duplicates

    total = BatchWriteResult()

    def collect(result: BatchWriteResult, size: int, duplicates: list[dict[str, Any]]) -> None:
        result.bytes = size
        result.duplicates = duplicates
        total.merge(result)
        if on_chunk:
            on_chunk(result)

    if concurrency <= 1:
        for unique, size, duplicates in prepared():
            collect(_send_chunk(table, unique, max_attempts, written_before=total.written), size, duplicates)
        return total
    _batch_write_concurrently(table, prepared(), max_attempts, concurrency, collect, total)
    return total


@dataclass
class BatchChunk:
    """One BatchWriteItem call's requests, serialized and checked, not yet sent."""

    requests: list[dict[str, Any]]
    size: int


def batch_write_chunks(
    *, table: str, items: Iterable[Mapping[str, Any]], key_names: tuple[str, ...] | None = None
) -> list[BatchChunk]:
    """Items serialized into BatchWriteItem chunks (25 requests, 16 MB), nothing sent.

    Raises what ``dynamodb_batch_write`` would before sending: ``ItemTooLarge`` / ``CodecError`` for an item,
    ``DuplicateKeysInBatch`` for two items with one key in a chunk. The caller sends them with a ``BatchWriter``.
    """
    key_names = key_names or table_key_names(table)
    requests = ((({"PutRequest": {"Item": wire}}), size) for wire, size in map(serialize_checked, items))
    chunks = []
    for chunk in _chunks(requests):
        unique, duplicates = _unique_requests(chunk, key_names)
        if duplicates:
            raise DuplicateKeysInBatch(
                ERR_DUPLICATE_KEYS.format(count=len(duplicates), table=table), details={"keys": duplicates[:10]}
            )
        chunks.append(BatchChunk(unique, sum(size for _request, size in chunk)))
    return chunks


class BatchWriter:
    """Sends prepared chunks from ``concurrency`` threads that live as long as the writer.

    For a pipeline (a migration unit, or units one after another in one worker: the next unit's first
    chunks queue behind the last ones of the unit before): the caller prepares the next chunks while
    earlier ones are in flight, and decides which results to wait for. ``close(cancel=True)`` drops the
    chunks not yet started and waits for those in flight (an HTTP call cannot be taken back); a caller that
    shares the writer cancels its own futures instead (``Future.cancel`` drops a chunk not yet started).
    Each future's result is the chunk's ``BatchWriteResult`` (with its ``bytes``), or raises as
    ``dynamodb_batch_write`` would.
    """

    def __init__(self, *, concurrency: int, max_attempts: int = BATCH_MAX_ATTEMPTS) -> None:
        self.max_attempts = max_attempts
        self._pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="batch-writer")
        self._stop = threading.Event()  # ``close(cancel=True)``: the chunks running send no retry more
        self._stops: weakref.WeakSet[threading.Event] = weakref.WeakSet()  # the callers' own (``submit``)

    def submit(self, chunk: BatchChunk, *, table: str, stop: threading.Event | None = None) -> Future:
        """Queue one chunk. ``stop``: the caller's own event (a unit sharing the writer with others); once it
        is set, the chunk, queued or running, sends no call more (its future raises ``BatchWriteIncomplete``
        at once, backoff or not). ``close(cancel=True)`` sets every such event too."""
        if stop is None:
            stop = self._stop
        else:
            self._stops.add(stop)
            if self._stop.is_set():
                stop.set()
        return self._pool.submit(self._send, table, chunk, stop)

    def _send(self, table: str, chunk: BatchChunk, stop: threading.Event) -> BatchWriteResult:
        result = _send_chunk(table, chunk.requests, self.max_attempts, 0, stop)
        result.bytes = chunk.size
        return result

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            self._stop.set()
            for stop in list(self._stops):
                stop.set()
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.close(cancel=exc_type is not None)


def _batch_write_concurrently(table, chunks, max_attempts, concurrency, collect, total) -> None:
    """Send chunks from ``concurrency`` threads; results are collected in order, in the caller's thread."""
    in_flight: deque = deque()
    failures: list[BatchWriteIncomplete] = []
    refused: list[BaseException] = []  # what on_chunk raised: the caller's refusal to go on, raised above all
    stop = threading.Event()  # set with a refusal: the chunks running send no retry more
    spent = BatchWriteResult()  # what the chunks that failed consumed (those that landed reach ``collect``)

    def give_up(exc: BaseException) -> None:
        stop.set()
        for future, _size, _duplicates in in_flight:
            future.cancel()
        in_flight.clear()
        refused.append(exc)

    def settle(entry) -> None:
        future, size, duplicates = entry
        try:
            result = future.result()
        except BatchWriteIncomplete as exc:
            total.written += exc.written
            failures.append(exc)
            _spent_add(spent, exc)
            return
        except BaseException as exc:
            _spent_add(spent, exc)
            raise
        try:
            collect(result, size, duplicates)
        except BaseException as exc:
            # ``on_chunk`` refused to go on (a migration unit that lost its lease): the chunks not sent yet
            # are cancelled, those running send no retry, and only calls already sent are waited for (by the
            # pool's exit).
            give_up(exc)
            raise

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch-write") as pool:
        error: BaseException | None = None
        try:
            for unique, size, duplicates in chunks:
                if failures:
                    break
                in_flight.append((pool.submit(_send_chunk, table, unique, max_attempts, 0, stop), size, duplicates))
                while len(in_flight) >= 2 * concurrency:
                    settle(in_flight.popleft())
        except Exception as exc:  # noqa: BLE001 - raised below, once the chunks sent are settled
            error = exc
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C, SystemExit: stop as on_chunk's refusal would
            if not refused:
                give_up(exc)
        # Every chunk already sent is waited for and counted, whatever happened (a chunk refused, an item the
        # codec refused): those that landed reach on_chunk. The first error is the one raised, unless on_chunk
        # itself refused to go on: then ``settle`` cancelled the rest, and that refusal is raised (a lost lease
        # hidden behind a chunk's error would send the page again item by item).
        while in_flight:
            try:
                settle(in_flight.popleft())
            except Exception as exc:  # noqa: BLE001 - the first error wins
                error = error if error is not None else exc
            except BaseException as exc:  # noqa: BLE001 - Ctrl-C, SystemExit: stop as on_chunk's refusal would
                if not refused:
                    give_up(exc)
        # Whichever error is raised carries what every failed chunk consumed (its own included).
        if refused:
            refused[0].spent = spent
            if error is not None and error is not refused[0]:
                raise refused[0] from error
            raise refused[0]
        if error is not None:
            error.spent = spent
            raise error
    if failures:
        unwritten = sum(exc.unwritten for exc in failures)
        raise BatchWriteIncomplete(
            ERR_BATCH_INCOMPLETE.format(count=unwritten, table=table, attempts=max_attempts),
            unwritten=unwritten,
            written=total.written,
            spent=spent,
        )


def _unique_requests(
    chunk: list[tuple[dict[str, Any], int]], key_names: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    seen: set[tuple[Any, ...]] = set()
    unique: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for request, _size in chunk:
        key = _key_of(request, key_names)
        if key in seen:
            body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
            duplicates.append(deserialize_item({name: body[name] for name in key_names if name in body}))
        else:
            seen.add(key)
            unique.append(request)
    return unique, duplicates


def _send_chunk(
    table: str,
    requests: list[dict[str, Any]],
    max_attempts: int,
    written_before: int,
    stop: threading.Event | None = None,
) -> BatchWriteResult:
    """One chunk, its unprocessed items and throttled calls retried with backoff. ``stop`` set (the caller
    refused to go on): no call more is sent, not even the first, and what is left ends as
    ``BatchWriteIncomplete``. ``unprocessed_retries`` and ``throttle_retries`` count the calls answered so
    (each retried unless the chunk stopped or ran out of attempts). An error raised after the first call
    carries what the calls before it consumed (``spent_of``)."""
    result = BatchWriteResult()
    pending = requests
    attempt = 0
    while pending:
        if attempt >= max_attempts or (stop is not None and stop.is_set()):
            raise BatchWriteIncomplete(
                ERR_BATCH_INCOMPLETE.format(count=len(pending), table=table, attempts=attempt),
                unwritten=len(pending),
                written=written_before + result.written,
                spent=result,
            )
        try:
            response = client._call("BatchWriteItem", table=table, profile="bulk", RequestItems={table: pending})
        except DynamoDBThrottled:
            result.calls += 1
            result.throttle_retries += 1
            unprocessed = pending
        except Exception as exc:
            if result.calls:
                exc.spent = result
            raise
        else:
            result.calls += 1
            result.write_units += write_units_of("BatchWriteItem", response.get("ConsumedCapacity"), table=table)
            unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            result.written += len(pending) - len(unprocessed)
            if unprocessed:
                result.unprocessed_retries += 1
                metrics.DYNAMODB_THROTTLES.labels("BatchWriteItem", table).inc()
                _notify_error("throttled", "BatchWriteItem", table, "UnprocessedItems")
        pending = unprocessed
        if not pending:
            break
        attempt += 1
        if attempt < max_attempts:
            _backoff_wait(backoff_delay(attempt), stop)
    return result


def _backoff_wait(seconds: float, stop: threading.Event | None) -> bool:
    """Sleep out a retry's backoff; with ``stop``, end it as soon as the event is set: whether it was (the
    caller refused to go on, or pressed Ctrl-C: the stop is not kept waiting for seconds of backoff)."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)
