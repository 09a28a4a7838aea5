"""The test-side DynamoDB hooks (tests/fixtures/dynamodb_hooks.py) see and alter calls through botocore's events."""

import ast
from pathlib import Path

import pytest

from lizzy.dynamodb import (
    ConditionFailed,
    DynamoDBThrottled,
    dynamodb_batch_get,
    dynamodb_get_item,
    dynamodb_list_tables,
    dynamodb_put_item,
)
from lizzy.tables import SESSIONS
from tests.fixtures.dynamodb_hooks import client_error, fault_injection, record_calls

ROOT = Path(__file__).resolve().parents[2]


def test_record_calls_names_each_operation_and_table_once(dynamodb):
    with record_calls() as calls:
        dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550100"})
        dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": "+12065550100"}])
        dynamodb_list_tables()
    assert calls == [("PutItem", SESSIONS.name), ("BatchGetItem", SESSIONS.name), ("ListTables", "-")]
    dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550100"})
    assert len(calls) == 3  # nothing recorded after the block


def test_a_fault_hook_can_alter_the_response_and_its_real_call_is_not_hooked_again(dynamodb):
    dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550101", "turns": 1})
    seen = []

    def hook(operation, params, send):
        seen.append(operation)
        response = send(params)
        if operation == "GetItem":
            response["Item"]["turns"] = {"N": "99"}
        return response

    with record_calls() as calls, fault_injection(hook):
        item = dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550101"})
    assert item["turns"] == 99
    assert seen == ["GetItem"]
    assert calls == [("GetItem", SESSIONS.name)]
    assert dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550101"})["turns"] == 1


def test_errors_a_hook_raises_are_translated_like_the_endpoints(dynamodb):
    def hook(operation, params, send):
        if operation == "PutItem":
            raise client_error("ConditionalCheckFailedException", "no", operation)
        raise client_error("ProvisionedThroughputExceededException", "slow down", operation)

    with fault_injection(hook):
        with pytest.raises(ConditionFailed):
            dynamodb_put_item(table=SESSIONS.name, item={"phone": "+12065550102"})
        with pytest.raises(DynamoDBThrottled):
            dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550102"})
    assert dynamodb_get_item(table=SESSIONS.name, key={"phone": "+12065550102"}) is None  # nothing was written


def test_the_innermost_fault_hook_answers(dynamodb):
    order = []

    def outer(operation, params, send):
        order.append("outer")
        return send(params)

    def inner(operation, params, send):
        order.append("inner")
        return {"TableNames": ["from-inner"]}

    with fault_injection(outer), fault_injection(inner):
        assert dynamodb_list_tables() == ["from-inner"]
    assert order == ["inner"]


def test_production_code_carries_no_test_hook():
    hooks = {"fault_injection", "record_calls", "client_error", "_fault_hook", "_call_listeners"}
    found = []
    for path in (ROOT / "lizzy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "name", None) or getattr(node, "id", None)
            if name in hooks:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []
