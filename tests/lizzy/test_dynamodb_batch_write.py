import pytest

from lizzy import dynamodb as ddb
from lizzy.dynamodb import (
    BatchWriteIncomplete,
    DuplicateKeysInBatch,
    batch,
    client,
    dynamodb_batch_write,
    dynamodb_scan,
)
from lizzy.tables import SESSIONS
from tests.fixtures.dynamodb_hooks import record_calls


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(batch, "backoff_delay", lambda _attempt: 0.0)


def items(count, prefix="+1206555"):
    return [{"phone": f"{prefix}{index:04d}", "currentNode": "MAIN_MENU", "ttl": 4102444800} for index in range(count)]


def all_items():
    return dynamodb_scan(table=SESSIONS.name).items


def test_writes_in_calls_of_25(dynamodb):
    with record_calls() as calls:
        result = dynamodb_batch_write(table=SESSIONS.name, items=items(60))
    assert result.written == 60
    assert [op for op, _ in calls].count("BatchWriteItem") == 3
    assert len(all_items()) == 60


def test_unprocessed_items_are_retried_until_written(dynamodb, monkeypatch, no_sleep):
    real_call = client._call
    state = {"calls": 0}

    def flaky(operation, /, **params):
        if operation != "BatchWriteItem":
            return real_call(operation, **params)
        state["calls"] += 1
        requests = params["RequestItems"][SESSIONS.name]
        half = (len(requests) + 1) // 2
        keep, drop = requests[:half], requests[half:]
        response = real_call(operation, **{**params, "RequestItems": {SESSIONS.name: keep}})
        if drop:  # half of every call comes back unprocessed
            response["UnprocessedItems"] = {SESSIONS.name: drop}
        return response

    monkeypatch.setattr(client, "_call", flaky)
    result = dynamodb_batch_write(table=SESSIONS.name, items=items(50))
    assert result.written == 50
    assert result.unprocessed_retries > 0
    assert len(all_items()) == 50


def test_throttling_errors_are_retried(dynamodb, monkeypatch, no_sleep):
    real_call = client._call
    state = {"throttled": 0}

    def throttling(operation, /, **params):
        if operation == "BatchWriteItem" and state["throttled"] < 3:
            state["throttled"] += 1
            raise ddb.DynamoDBThrottled("throttled")
        return real_call(operation, **params)

    monkeypatch.setattr(client, "_call", throttling)
    result = dynamodb_batch_write(table=SESSIONS.name, items=items(10))
    assert result.written == 10
    assert result.throttle_retries == 3


def test_gives_up_after_bounded_attempts_naming_what_was_not_written(dynamodb, monkeypatch, no_sleep):
    def always_unprocessed(operation, /, **params):
        if operation == "BatchWriteItem":
            return {"UnprocessedItems": params["RequestItems"]}
        return {"Table": {"KeySchema": [{"AttributeName": "phone"}]}}

    monkeypatch.setattr(client, "_call", always_unprocessed)
    with pytest.raises(BatchWriteIncomplete) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=items(7), key_names=("phone",), max_attempts=4)
    assert excinfo.value.unwritten == 7
    assert "7 item(s) were not written" in excinfo.value.message


def test_duplicate_keys_in_one_batch_are_refused_before_sending(dynamodb):
    batch = items(3) + items(1)
    with record_calls() as calls, pytest.raises(DuplicateKeysInBatch) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=batch)
    assert excinfo.value.details["keys"] == [{"phone": "+12065550000"}]
    assert "BatchWriteItem" not in [op for op, _ in calls]


def test_duplicate_keys_can_be_reported_and_skipped(dynamodb):
    result = dynamodb_batch_write(table=SESSIONS.name, items=items(3) + items(1), on_duplicate="skip")
    assert result.written == 3
    assert result.duplicates == [{"phone": "+12065550000"}]


def test_consumed_capacity_is_recorded_per_table_and_operation(dynamodb):
    ddb.consumed_capacity(reset=True)
    dynamodb_batch_write(table=SESSIONS.name, items=items(5))
    usage = ddb.consumed_capacity()
    # moto reports one unit per call; real DynamoDB one per item. Either way it is what the endpoint said.
    assert usage[(SESSIONS.name, "BatchWriteItem")]["write"] >= 1
    assert usage[(SESSIONS.name, "BatchWriteItem")]["calls"] == 1
    assert (SESSIONS.name, "GetItem") not in usage


def test_concurrent_chunks_write_everything_and_report_every_chunk(dynamodb):
    seen = []
    with record_calls() as calls:
        result = dynamodb_batch_write(table=SESSIONS.name, items=items(130), concurrency=4, on_chunk=seen.append)
    assert result.written == 130
    assert result.calls == 6
    assert [op for op, _ in calls].count("BatchWriteItem") == 6
    assert sum(chunk.written for chunk in seen) == 130
    assert len(all_items()) == 130


def test_concurrent_chunks_that_never_get_written_are_all_counted(dynamodb, monkeypatch, no_sleep):
    def half_unprocessed(operation, /, **params):
        requests = params["RequestItems"][SESSIONS.name]
        if any(r["PutRequest"]["Item"]["phone"]["S"].endswith("7") for r in requests):
            return {"UnprocessedItems": params["RequestItems"]}  # chunks holding a ...7 never succeed
        return {}

    monkeypatch.setattr(client, "_call", half_unprocessed)
    batch = items(25) + [{"phone": f"+1206666{index:04d}"} for index in range(0, 50, 10)]  # no 7: written
    with pytest.raises(BatchWriteIncomplete) as excinfo:
        dynamodb_batch_write(table=SESSIONS.name, items=batch, key_names=("phone",), max_attempts=3, concurrency=3)
    assert excinfo.value.unwritten == 25
    assert excinfo.value.written == 5


def test_concurrent_chunks_refuse_duplicate_keys_too(dynamodb):
    with pytest.raises(DuplicateKeysInBatch):
        dynamodb_batch_write(table=SESSIONS.name, items=items(3) + items(1), concurrency=2)
