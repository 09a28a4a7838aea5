from django.core.management import call_command

from lizzy.dynamodb import dynamodb_describe_table, dynamodb_ttl_attribute, get_client, reset_client
from lizzy.tables import SESSIONS, IndexSpec, TableSpec, table_ensure


def test_session_table_name_carries_the_environment_suffix(settings):
    settings.LIZZY_ENV = ""
    assert SESSIONS.name == "LizzySMSSessions"
    settings.LIZZY_ENV = "prod"
    assert SESSIONS.name == "LizzySMSSessions-prod"


def test_ensure_tables_twice_creates_then_reports_existing(dynamodb, capsys, settings):
    settings.LIZZY_ENV = "fresh"
    reset_client()
    call_command("ensure_tables")
    first = capsys.readouterr().out
    call_command("ensure_tables")
    second = capsys.readouterr().out
    assert f"{SESSIONS.name}: created; TTL enabled" in first
    assert f"{SESSIONS.name}: already existed" in second
    assert "TTL enabled" not in second
    description = dynamodb_describe_table(table=SESSIONS.name)
    assert description["KeySchema"] == [{"AttributeName": "phone", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert dynamodb_ttl_attribute(table=SESSIONS.name) == "ttl"


def test_missing_gsi_is_added_to_an_existing_table(dynamodb):
    plain = TableSpec(base_name="Widgets", partition_key=("PK", "S"), sort_key=("SK", "S"))
    table_ensure(spec=plain)
    indexed = TableSpec(
        base_name="Widgets",
        partition_key=("PK", "S"),
        sort_key=("SK", "S"),
        indexes=(IndexSpec("GSI1", ("GSI1PK", "S"), ("GSI1SK", "S")),),
    )
    result = table_ensure(spec=indexed)
    assert result.indexes_added == ["GSI1"]
    names = [
        i["IndexName"] for i in get_client().describe_table(TableName=indexed.name)["Table"]["GlobalSecondaryIndexes"]
    ]
    assert names == ["GSI1"]
