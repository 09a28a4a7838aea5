"""The AWS DMS user guide's DynamoDB-target examples, unchanged, give the items the guide shows."""

from lizzy.dynamodb import dynamodb_get_item, dynamodb_scan_segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate


def _migrate(name, mapping, source_url):
    plan = plan_save(name=name, source_url=source_url, mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context), context=context)
    return plan, run


def test_nfl_data_and_sport_team_end_to_end(dynamodb, db, dms_mapping, nfl_source):
    # when
    plan, run = _migrate("nfl", dms_mapping("nfl_sport_team.json"), nfl_source)

    # then: the NFLTeams sample output of the guide, attribute for attribute
    assert run.status == "succeeded"
    assert dynamodb_get_item(table="NFLTeams", key={"Team": "NE", "PlayerName": "Allen, Ryan"}) == {
        "PlayerInfo": '{"Number": "6","Position": "P","Status": "ACT","Stats": {"Stat1": "PUNTS:73",'
        '"Stat2": "AVG:46","Stat3": "LNG:67","Stat4": "IN 20:31"}',
        "PlayerName": "Allen, Ryan",
        "Position": "P",
        "stat1": "PUNTS",
        "stat1_val": "73",
        "stat2": "AVG",
        "stat2_val": "46",
        "stat3": "LNG",
        "stat3_val": "67",
        "stat4": "IN 20",
        "stat4_val": "31",
        "status": "ACT",
        "Team": "NE",
    }
    # and the SportTeams sample output
    assert list(dynamodb_scan_segment(table="SportTeams")) == [
        {
            "abbreviated_name": "IND",
            "home_field_id": 53,
            "sport_division_short_name": "AFC South",
            "sport_league_short_name": "NFL",
            "sport_type_name": "football",
            "TeamInfo": '{"League": "NFL","Division": "AFC South"}',
            "TeamName": "Indianapolis Colts",
        }
    ]
    assert plan_validate(plan=plan).clean


CUSTOMER_DDL = """
CREATE TABLE customer (FirstName TEXT, LastName TEXT, StoreId INTEGER, HomeAddress TEXT, HomePhone TEXT,
  WorkAddress TEXT, WorkPhone TEXT, NickName TEXT, income INTEGER, PRIMARY KEY (FirstName, LastName));
"""
RANDY = {
    "FirstName": "Randy",
    "LastName": "Marsh",
    "StoreId": 5,
    "HomeAddress": "221B Baker Street",
    "HomePhone": "1234567890",
    "WorkAddress": "31 Spooner Street, Quahog",
    "WorkPhone": "9876543210",
    "NickName": "Randy",
    "income": None,
}


def test_record_to_record_copies_columns_not_excluded_and_drops_nulls(dynamodb, db, dms_mapping, sqlite_source):
    source = sqlite_source(CUSTOMER_DDL, {"customer": [RANDY]})

    _migrate("customer", dms_mapping("customer_document.json"), source)

    assert dynamodb_get_item(table="customer_t", key={"CustomerName": "Randy,Marsh"}) == {
        "CustomerName": "Randy,Marsh",
        "StoreId": 5,
        "NickName": "Randy",
        "ContactDetails": {
            "Home": {"Address": "221B Baker Street", "Phone": "1234567890"},
            "Work": {"Address": "31 Spooner Street, Quahog", "Phone": "9876543210"},
        },
    }


def test_record_to_document_puts_other_columns_in_doc(dynamodb, db, dms_mapping, sqlite_source):
    mapping = dms_mapping("customer_document.json")
    mapping["rules"][1]["rule-action"] = "map-record-to-document"
    source = sqlite_source(CUSTOMER_DDL, {"customer": [{**RANDY, "income": 100}]})

    _migrate("customer-doc", mapping, source)

    item = dynamodb_get_item(table="customer_t", key={"CustomerName": "Randy,Marsh"})
    assert item["_doc"] == {"StoreId": 5, "NickName": "Randy", "income": 100}
    assert set(item) == {"CustomerName", "ContactDetails", "_doc"}
