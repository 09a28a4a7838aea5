import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.core.cache import cache

from lizzy.dynamodb.errors import _translate
from lizzy.observability.alarms import alarm_event_record, alarm_states, recent_errors


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def states(now):
    return {state.rule.key: state for state in alarm_states(now=now)}


def test_thresholds_are_seed_000s():
    now = 1_800_000_000.0
    # given 10 user errors, 0 system errors and 0 throttles in the window: all green
    for _ in range(10):
        alarm_event_record(kind="user", operation="PutItem", table="t", code="ValidationException", now=now)
    assert not any(state.firing for state in alarm_states(now=now))

    # when an eleventh user error, one system error and one throttle arrive
    alarm_event_record(kind="user", operation="PutItem", table="t", code="ValidationException", now=now)
    alarm_event_record(kind="system", operation="GetItem", table="t", code="InternalServerError", now=now)
    alarm_event_record(kind="throttled", operation="Query", table="t", code="ThrottlingException", now=now)

    # then all three are red
    current = states(now)
    assert current["user_errors"].firing
    assert current["user_errors"].count == 11
    assert current["system_errors"].firing
    assert current["throttled_requests"].firing


def test_errors_leave_the_window_after_five_minutes():
    now = 1_800_000_000.0
    alarm_event_record(kind="system", operation="GetItem", table="t", code="InternalServerError", now=now)
    assert states(now + 4 * 60)["system_errors"].firing
    assert not states(now + 5 * 60)["system_errors"].firing


def test_the_dynamodb_door_reports_errors_by_kind():
    def client_error(code, status):
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    _translate("PutItem", "t", client_error("ValidationException", 400))
    _translate("GetItem", "t", client_error("InternalServerError", 500))
    _translate("Query", "t", client_error("ProvisionedThroughputExceededException", 400))
    _translate("PutItem", "t", client_error("ConditionalCheckFailedException", 400))  # not an error to alarm on
    _translate("GetItem", "t", EndpointConnectionError(endpoint_url="http://x"))

    current = {state.rule.key: state.count for state in alarm_states()}
    assert current == {"system_errors": 2, "user_errors": 1, "throttled_requests": 1}
    assert [error["code"] for error in recent_errors()] == [
        "EndpointConnectionError",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "ValidationException",
    ]


def test_a_broken_cache_never_turns_into_the_callers_error(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(cache, "add", broken)
    alarm_event_record(kind="system", operation="GetItem", table="t", code="X")  # no exception
