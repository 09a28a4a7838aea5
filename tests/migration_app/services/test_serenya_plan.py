"""Seed 002: Serenya's relational schema into the single table, on SQLite and on PostgreSQL."""

from decimal import Decimal

import pytest

from lizzy.dynamodb import dynamodb_describe_table, dynamodb_get_item, dynamodb_ttl_attribute
from migration_app.selectors import (
    serenya_jobs_by_status,
    serenya_subscription_latest,
    serenya_user_find_by_external_id,
)
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.sample_data import plan_mapping, serenya_generate, serenya_rows
from migration_app.services.templates import Template
from migration_app.services.validation import plan_validate

USERS = 6


def _migrate(url, segments=1):
    plan = plan_save(name="serenya", source_url=url, mapping=plan_mapping(name="serenya"))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context, segments=segments), context=context)
    return plan, run


def _check_single_table_design():
    rows = serenya_rows(users=USERS)
    user = rows["users"][1]
    description = dynamodb_describe_table(table="serenya-test")
    assert [k["AttributeName"] for k in description["KeySchema"]] == ["PK", "SK"]
    assert sorted(i["IndexName"] for i in description["GlobalSecondaryIndexes"]) == ["GSI1", "GSI2"]
    assert dynamodb_ttl_attribute(table="serenya-test") == "ttl"

    item = dynamodb_get_item(table="serenya-test", key={"PK": f"USER#{user['id']}", "SK": "PROFILE"})
    email_hash = Template.parse("${hmac_sha256(lower(trim(email)))}").value(user)
    assert item["GSI1PK"] == f"USER_EMAIL#{email_hash}"
    assert item["GSI2PK"] == f"USER_EXTERNAL#google#{user['external_id']}"
    assert item["entity_type"] == "user"
    assert item["created_at"] == "2025-09-01T01:00:00.000000Z"
    assert item["data"]["account_status"] == "active"

    found = serenya_user_find_by_external_id(auth_provider="google", external_id=user["external_id"])
    assert found["id"] == str(user["id"])
    latest = serenya_subscription_latest(user_id=str(user["id"]))
    assert (latest["status"], latest["subscription_type"]) == ("active", "premium")
    processing = serenya_jobs_by_status(status="processing")
    assert len(processing) == USERS
    assert processing[0]["GSI1SK"] > processing[-1]["GSI1SK"]  # newest first


def test_serenya_on_sqlite(db, dynamodb, tmp_path):
    url = f"sqlite:///{tmp_path / 'serenya.sqlite3'}"
    serenya_generate(url=url, users=USERS)

    plan, run = _migrate(url, segments=2)

    rows = serenya_rows(users=USERS)
    assert run.rows_read == sum(len(table_rows) for table_rows in rows.values())
    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    # the expired sessions were copied (as DMS would) and count as absent on both sides
    assert report.expired_ignored == USERS
    assert report.expected == run.rows_read - USERS
    _check_single_table_design()


@pytest.mark.integration
def test_serenya_on_postgresql(db, dynamodb, postgres_source):
    serenya_generate(url=postgres_source, users=USERS)

    plan, run = _migrate(postgres_source, segments=2)

    report = plan_validate(plan=plan)
    assert report.clean, report.samples
    _check_single_table_design()
    payment = serenya_rows(users=USERS)["payments"][1]
    key = {"PK": f"USER#{payment['user_id']}", "SK": f"PAYMENT#2025-09-01T01:00:00.000000Z#{payment['id']}"}
    item = dynamodb_get_item(table="serenya-test", key=key)
    assert item["data"]["amount"] == Decimal("10.99")  # numeric, exactly
