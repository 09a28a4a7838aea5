"""A mapping is checked before anything is written; errors name the rule and the field."""

import pytest

from lizzy.dynamodb import dynamodb_describe_table
from migration_app.services.mapping import MappingError, mapping_parse
from migration_app.services.plans import plan_check, plan_save
from migration_app.services.templates import Template, TemplateError
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows


def test_unknown_column_names_rule_and_field(db, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(1)})
    mapping = things_mapping()
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "THING#${identifier}"

    with pytest.raises(MappingError) as error:
        plan_check(mapping=mapping, source_url=source)

    assert error.value.details["rule"] == "things"
    assert error.value.details["field"] == "mapping-parameters.attribute-mappings[0].value"
    assert "'identifier' is not in the source" in error.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rule-action": "map-record-to-nowhere"}, "rule-action"),
        ({"target-table-name": "x"}, "target-table-name"),
        ({"ttl": "${epoch(updated_at}"}, "ttl"),
        (
            {"mapping-parameters": {"partition-key-name": "PK", "condition-expression": {"expression": "x"}}},
            "mapping-parameters.condition-expression",
        ),
        (
            {
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "${nope(id)}"}
                    ],
                }
            },
            "mapping-parameters.attribute-mappings[0].value",
        ),
        (
            {
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {
                            "target-attribute-name": "PK",
                            "attribute-type": "document",
                            "attribute-sub-type": "string",
                            "value": "x",
                        }
                    ],
                }
            },
            "mapping-parameters.attribute-mappings[0].attribute-sub-type",
        ),
    ],
)
def test_structural_errors_name_the_field(change, field):
    mapping = things_mapping()
    mapping["rules"][0].update(change)

    with pytest.raises(MappingError) as error:
        mapping_parse(document=mapping)

    assert error.value.details == {"rule": "things", "field": field, "problem": error.value.details["problem"]}


def test_key_not_produced_is_refused_and_nothing_is_written(db, dynamodb, sqlite_source):
    source = sqlite_source(THINGS_DDL, {"things": things_rows(1)})
    mapping = things_mapping()
    mapping["rules"][0]["mapping-parameters"]["partition-key-name"] = "Missing"

    with pytest.raises(MappingError) as error:
        plan_save(name="bad", source_url=source, mapping=mapping)

    assert error.value.details["field"] == "mapping-parameters.partition-key-name"
    assert dynamodb_describe_table(table="Things") is None


ROW = {"email": "  Ann@Example.COM ", "phone": "(206) 555-0100", "at": "2025-09-27T10:00:00+02:00", "n": None}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${lower(trim(email))}", "ann@example.com"),
        ("${sha256(lower(trim(email)))}", "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476"),
        ("${e164(phone)}", "+12065550100"),
        ("${epoch(at)}", 1758960000),
        ("${iso8601(at)}", "2025-09-27T08:00:00.000000Z"),
        ("${default(n, 'none')}", "none"),
        ("${json(at)}", '"2025-09-27T10:00:00+02:00"'),
        ("A#${upper(n)}#B", "A##B"),
    ],
)
def test_template_functions(template, expected):
    assert Template.parse(template).value(ROW) == expected


def test_hmac_is_keyed_by_the_setting(settings):
    template = Template.parse("${hmac_sha256(email)}")
    first = template.value({"email": "a@b.c"})
    settings.LIZZY_MAPPING_HMAC_KEY = "another"
    assert template.value({"email": "a@b.c"}) != first
    settings.LIZZY_MAPPING_HMAC_KEY = ""
    with pytest.raises(TemplateError):
        template.value({"email": "a@b.c"})
