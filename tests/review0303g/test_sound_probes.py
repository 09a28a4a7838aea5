"""Probes of 73891b1 that hold (they pass): kept as regression guards."""

from __future__ import annotations

import argparse

import pytest

from lizzy.dynamodb import BatchWriteIncomplete, DynamoDBError, dynamodb_batch_write
from lizzy.tables import SESSIONS
from migration_app.management.commands.migrate_to_dynamodb import _rows
from migration_app.services.runs import LeaseLost
from tests.fixtures.dynamodb_hooks import client_error, fault_injection


def items(count):
    return [{"phone": f"+1206555{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def _first(params):
    (requests,) = params["RequestItems"].values()
    return requests[0]["PutRequest"]["Item"]["phone"]["S"], requests


def test_incomplete_chunk_counts_the_rest_written(dynamodb):
    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            _first_phone, requests = _first(params)
            ((table, _),) = params["RequestItems"].items()
            stuck = {f"+120655500{n}" for n in range(45, 50)}  # 5 items of the second chunk, never processed
            kept = [r for r in requests if r["PutRequest"]["Item"]["phone"]["S"] not in stuck]
            left = [r for r in requests if r["PutRequest"]["Item"]["phone"]["S"] in stuck]
            if left:
                if kept:
                    send({**params, "RequestItems": {table: kept}})
                return {"UnprocessedItems": {table: left}}
        return send(params)

    seen = []
    with fault_injection(hook), pytest.raises(BatchWriteIncomplete) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=items(100), concurrency=2, max_attempts=2, on_chunk=seen.append)
    assert (excinfo.value.written, excinfo.value.unwritten) == (95, 5)
    assert sum(result.written for result in seen) == 75


def test_refusal_after_an_incomplete_chunk_and_a_refused_chunk_is_raised(dynamodb):
    def hook(operation, params, send):
        if operation == "BatchWriteItem":
            first, requests = _first(params)
            ((table, _),) = params["RequestItems"].items()
            if first == "+12065550000":
                return {"UnprocessedItems": {table: requests}}
            if first == "+12065550025":
                raise client_error("ValidationException", "refused", operation)
        return send(params)

    def on_chunk(_result):
        raise LeaseLost("lost")

    with fault_injection(hook), pytest.raises(LeaseLost) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=items(100), concurrency=2, max_attempts=2, on_chunk=on_chunk)
    assert isinstance(excinfo.value.__cause__, DynamoDBError)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), (" 3 ", 3)])
def test_rows_takes_zero_or_more(text, value):
    assert _rows(text) == value


@pytest.mark.parametrize("text", ["-0x1", "1.5", "", "-1"])
def test_rows_refuses_the_rest(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _rows(text)
