"""The command line: migrate_to_dynamodb's JSON summary and exit status, and the other commands."""

import json

import pytest
from django.core.management import call_command

from lizzy.dynamodb import dynamodb_describe_table, dynamodb_put_item, dynamodb_scan_segment
from migration_app.models import Backup, MigrationPlan
from tests.lizzy.test_iam_policy import policy_actions
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "things.json"
    path.write_text(json.dumps(things_mapping()))
    return str(path)


@pytest.fixture
def source(sqlite_source):
    return sqlite_source(THINGS_DDL, {"things": things_rows(40)})


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# transactional_db: on PostgreSQL the segments run in threads with their own connections, which must see
# the committed run.
def test_migrate_prints_a_json_summary_and_validates(transactional_db, dynamodb, mapping_file, source, capsys):
    call_command("migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--segments", "3", "--json")

    summary = _last_json(capsys)
    assert summary["plan"] == "things"
    assert (summary["rows_read"], summary["items_written"]) == (40, 40)
    assert {k: summary["validation"][k] for k in ("missing", "extra", "different")} == {
        "missing": 0,
        "extra": 0,
        "different": 0,
    }
    assert MigrationPlan.objects.get(name="things").phase == "backfill"


def test_validate_migration_exits_non_zero_on_a_mismatch(db, dynamodb, mapping_file, source, capsys):
    call_command("migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--json")
    dynamodb_put_item(table="Things", item={"PK": "THING#extra"})
    capsys.readouterr()

    with pytest.raises(SystemExit) as exited:
        call_command("validate_migration", "things", "--json")

    assert exited.value.code == 1
    assert _last_json(capsys)["validation"]["extra"] == 1


def test_dry_run_writes_nothing_and_prints_samples(db, dynamodb, mapping_file, source, capsys):
    call_command("migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--dry-run", "--json")

    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[0])["item"]["PK"] == "THING#1"
    assert dynamodb_describe_table(table="Things") is None
    assert not MigrationPlan.objects.exists()


def test_limit_migrates_a_small_set_first(db, dynamodb, mapping_file, source, capsys):
    call_command("migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--limit", "10", "--json")

    assert _last_json(capsys)["rows_read"] == 10
    assert len(list(dynamodb_scan_segment(table="Things"))) == 10


def test_async_runs_the_segments_as_a_celery_group(db, dynamodb, mapping_file, source, capsys):
    # Celery runs eagerly in tests: the chord's callback closes the run.
    call_command(
        "migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--segments", "2", "--async", "--json"
    )
    summary = _last_json(capsys)

    call_command("migration_status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status[0]["run"]["status"] == "succeeded"
    assert status[0]["run"]["segments"] == 2
    assert status[0]["run"]["rows_read"] == 40
    assert summary["run"] == status[0]["run"]["id"]


def test_backup_and_restore_commands(db, dynamodb, mapping_file, source, capsys):
    call_command("migrate_to_dynamodb", "--mapping", mapping_file, "--source", source, "--json")
    call_command("backup_table", "Things")
    backup = Backup.objects.filter(reason="manual").get()
    capsys.readouterr()

    call_command("restore_table", str(backup.pk), "--target-table", "ThingsRestored")

    result = json.loads(capsys.readouterr().out)
    assert result["verified"]
    assert result["item_count"] == 40


def test_export_infrastructure_covers_tables_indexes_ttl_and_policy(db, capsys):
    call_command("export_infrastructure")

    template = json.loads(capsys.readouterr().out)
    tables = {
        r["Properties"]["TableName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    assert {"LizzySMSSessions-test", "serenya-test", "k9-users-test", "k9-reports-test", "k9-embeddings-test"} <= set(
        tables
    )
    assert [i["IndexName"] for i in tables["serenya-test"]["GlobalSecondaryIndexes"]] == ["GSI1", "GSI2"]
    assert tables["serenya-test"]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    policy = template["Resources"]["LizzyDynamoDBPolicy"]["Properties"]["PolicyDocument"]
    exported = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert exported == policy_actions()


@pytest.mark.parametrize(("given", "said"), [("-1", "-1 is negative"), ("many", "'many' is not a whole number")])
def test_max_bad_rows_is_a_count_of_rows(db, given, said):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=said):
        call_command("migrate_to_dynamodb", "--resume", "1", "--max-bad-rows", given)
