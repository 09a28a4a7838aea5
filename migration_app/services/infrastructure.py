"""Tables as code: a CloudFormation template built from the same specs ``ensure_tables`` and the plans use.

Seeds 002 and 003 manage their tables with CDK/CloudFormation; this gives such teams every table, GSI
and TTL setting, and an IAM policy holding exactly the actions of ``docs/iam-policy.json`` (which a test
keeps equal to the operations the code calls), scoped to these tables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.conf import settings

from lizzy.tables import TableSpec, product_tables
from migration_app.models import MigrationPlan
from migration_app.services.mapping import mapping_parse, target_name
from migration_app.services.sample_data import plan_mapping

POLICY_PATH = Path(settings.BASE_DIR) / "docs" / "iam-policy.json"
SHIPPED_PLANS = ("serenya", "k9")


def mapping_table_specs(*, mapping: dict[str, Any]) -> list[TableSpec]:
    """Table specs from a mapping alone (no source connection): rules must name their keys."""
    parsed = mapping_parse(document=mapping)
    specs: dict[str, TableSpec] = {}
    for rule in parsed.object_rules:
        params = rule.get("mapping-parameters", {})
        partition = params.get("partition-key-name")
        if not partition:
            continue  # DMS would take the source's primary key: only known with the source at hand
        name = target_name(rule["target-table-name"])
        types = rule.get("key-types", {})
        sort = params.get("sort-key-name")
        options = parsed.tables.get(name)
        specs.setdefault(
            name,
            TableSpec(
                base_name=name,
                partition_key=(partition, types.get(partition, "S")),
                sort_key=(sort, types.get(sort, "S")) if sort else None,
                indexes=tuple(options.indexes) if options else (),
                ttl_attribute=(options.ttl_attribute if options else None) or ("ttl" if rule.get("ttl") else None),
            ),
        )
    return list(specs.values())


def _logical_id(name: str) -> str:
    return "Table" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _table_resource(spec: TableSpec, name: str) -> dict[str, Any]:
    definition = spec.create_definition()
    properties: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": definition["AttributeDefinitions"],
        "KeySchema": definition["KeySchema"],
        "SSESpecification": {"SSEEnabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "Tags": definition["Tags"],
    }
    if "GlobalSecondaryIndexes" in definition:
        properties["GlobalSecondaryIndexes"] = definition["GlobalSecondaryIndexes"]
    if spec.ttl_attribute:
        properties["TimeToLiveSpecification"] = {"AttributeName": spec.ttl_attribute, "Enabled": True}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "Properties": properties}


def infrastructure_template(*, extra_mappings: list[dict[str, Any]] = ()) -> dict[str, Any]:
    tables: dict[str, TableSpec] = {spec.name: spec for spec in product_tables()}
    mappings = [plan_mapping(name=name) for name in SHIPPED_PLANS]
    mappings += list(MigrationPlan.objects.values_list("mapping", flat=True)) + list(extra_mappings)
    for mapping in mappings:
        for spec in mapping_table_specs(mapping=mapping):
            tables.setdefault(spec.base_name, spec)
    resources = {_logical_id(name): _table_resource(spec, name) for name, spec in sorted(tables.items())}
    arns = [{"Fn::GetAtt": [logical, "Arn"]} for logical in resources]
    index_arns = [{"Fn::Sub": f"${{{logical}.Arn}}/index/*"} for logical in resources]
    statements = []
    for statement in json.loads(POLICY_PATH.read_text())["Statement"]:
        scoped = dict(statement)
        if statement["Resource"] != "*":
            wants_indexes = any("/index/" in resource for resource in statement["Resource"])
            scoped["Resource"] = arns + (index_arns if wants_indexes else [])
        statements.append(scoped)
    resources["LizzyDynamoDBPolicy"] = {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": "Least privilege for Lizzy: the DynamoDB actions its code calls, on its tables only.",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Lizzy DynamoDB tables (environment {settings.LIZZY_ENV or 'none'}) and IAM policy.",
        "Resources": resources,
        "Outputs": {"PolicyArn": {"Value": {"Ref": "LizzyDynamoDBPolicy"}}},
    }
