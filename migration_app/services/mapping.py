"""Table mappings: AWS DMS's JSON, accepted unchanged, plus the extensions a single-table design needs.

DMS semantics kept: ``selection`` rules (``%`` wildcards, include/exclude), ``object-mapping`` rules with
``map-record-to-record`` (every column not excluded is copied under its own name) and
``map-record-to-document`` (those columns go into one ``_doc`` map), ``partition-key-name``,
``sort-key-name``, ``exclude-columns``, ``attribute-mappings`` (``scalar``/``document``; ``string``,
``number``, ``dynamodb-map``; ``${column}`` templates), NULL columns not written.

Extensions (all optional, ignored by nothing because DMS never sees our files): on an object-mapping
rule ``source-query`` (an SQL query, joins allowed, instead of a table), ``source-key`` (the columns
that order and page the source), ``entity-type``, ``ttl`` (a template giving epoch seconds),
``timestamps`` (``{"created_at": column, "updated_at": column}``), ``keep-nulls``,
``changed-at-column`` (for catch-up runs), ``document-attribute-name`` (``_doc`` by default),
``key-types``, ``column-types`` (declared types for a query's columns, which SQLite cannot report);
``attribute-sub-type: "native"`` keeps a single expression's type (maps, lists, bytes);
top level ``tables`` gives GSIs and the TTL attribute per target table. ``{env}`` in a target table name
becomes ``LIZZY_ENV``. Functions in templates are listed in :mod:`migration_app.services.templates`.

Every mapping is checked before anything is written; an error names the rule and the field.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from lizzy.dynamodb import deserialize_value, iso_utc
from lizzy.errors import ApplicationError
from lizzy.tables import IndexSpec, TableSpec
from migration_app.services.templates import Template, TemplateError

RULE_ACTIONS = {"map-record-to-record", "map-record-to-document"}
SUB_TYPES = {"scalar": {"string", "number", "native"}, "document": {"dynamodb-map", "json"}}

ERR_MAPPING = "Rule {rule}: {field}: {problem}"
ERR_NOT_JSON_OBJECT = "the mapping must be a JSON object with a 'rules' list"
ERR_NO_ENTITIES = "no object-mapping rule and no selected table: nothing would be migrated"
ERR_UNKNOWN_COLUMN = "column {column!r} is not in the source (columns: {columns})"
ERR_NO_KEY = "no partition key: set partition-key-name, or give the source table a primary key"
ERR_KEY_NOT_PRODUCED = "key attribute {name!r} is neither an attribute mapping nor a column carried over"
ERR_NUMBER_VALUE = "value {value!r} of {attribute!r} is not a number"


class MappingError(ApplicationError):
    code = "invalid_mapping"

    def __init__(self, rule: str, field_name: str, problem: str) -> None:
        super().__init__(
            ERR_MAPPING.format(rule=rule, field=field_name, problem=problem),
            details={"rule": rule, "field": field_name, "problem": problem},
        )


@dataclass(frozen=True)
class AttributeMapping:
    target: str
    kind: str  # scalar | document
    sub_type: str
    template: Template | None = None
    document: Any = None  # dynamodb-map: the typed structure with templates in its leaves

    def columns(self) -> set[str]:
        if self.template:
            return self.template.columns()
        found: set[str] = set()
        _walk_templates(self.document, lambda template: found.update(template.columns()))
        return found


def _walk_templates(node: Any, visit) -> None:
    if isinstance(node, Template):
        visit(node)
    elif isinstance(node, dict):
        for value in node.values():
            _walk_templates(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk_templates(value, visit)


@dataclass
class EntityMapping:
    """One object-mapping rule resolved against one source table (or query)."""

    rule: str
    schema: str
    table: str | None
    query: str | None
    action: str
    target_table: str
    partition_key: str
    sort_key: str | None
    exclude: set[str]
    attributes: list[AttributeMapping]
    entity_type: str | None = None
    ttl: Template | None = None
    timestamps: dict[str, str] = field(default_factory=dict)
    keep_nulls: bool = False
    changed_at_column: str | None = None
    document_attribute: str = "_doc"
    source_key: list[str] = field(default_factory=list)
    key_types: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.rule}:{self.table or 'query'}"

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        names = [self.partition_key] + ([self.sort_key] if self.sort_key else [])
        return {name: item.get(name) for name in names}

    def transform(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One source row → one item, with DMS's rules for columns and ours for the extensions."""
        item: dict[str, Any] = {}
        carried = {
            name: value
            for name, value in row.items()
            if name not in self.exclude and not name.startswith("__") and (value is not None or self.keep_nulls)
        }
        if self.action == "map-record-to-record":
            item.update(carried)
        else:
            for key_name in (self.partition_key, self.sort_key):
                if key_name and key_name in carried:
                    item[key_name] = carried.pop(key_name)
            item[self.document_attribute] = carried
        for mapping in self.attributes:
            value = _attribute_value(mapping, row, self.rule)
            if value is None and not self.keep_nulls:
                item.pop(mapping.target, None)
                continue
            item[mapping.target] = value
        if self.entity_type:
            item["entity_type"] = self.entity_type
        for attribute, column in self.timestamps.items():
            value = row.get(column)
            if isinstance(value, (dt.datetime, str)) and value != "":
                item[attribute] = iso_utc(_as_datetime(value))
        if self.ttl:
            value = self.ttl.value(row)
            if value is not None:
                item["ttl"] = int(value)
        return item


def _as_datetime(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _attribute_value(mapping: AttributeMapping, row: Mapping[str, Any], rule: str) -> Any:
    if mapping.template is not None:
        if mapping.sub_type == "native":
            return mapping.template.value(row)
        if mapping.template.single and mapping.template.value(row) is None:
            return None
        text = mapping.template.render(row)
        if mapping.sub_type == "number":
            try:
                number = Decimal(text)
            except InvalidOperation as exc:
                raise MappingError(
                    rule, mapping.target, ERR_NUMBER_VALUE.format(value=text, attribute=mapping.target)
                ) from exc
            return int(number) if number == number.to_integral_value() and "." not in text else number
        if mapping.kind == "document" and mapping.sub_type == "json":
            return json.loads(text)
        return text
    return deserialize_value(_render_typed(mapping.document, row))


def _render_typed(node: Any, row: Mapping[str, Any]) -> Any:
    if isinstance(node, Template):
        return node.render(row)
    if isinstance(node, dict):
        return {key: _render_typed(value, row) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_typed(value, row) for value in node]
    return node


@dataclass
class TableOptions:
    indexes: list[IndexSpec] = field(default_factory=list)
    ttl_attribute: str | None = None


@dataclass
class TableMapping:
    """A checked mapping: rules, table options; ``resolve`` binds it to a source's tables and columns."""

    raw: dict[str, Any]
    selections: list[dict[str, Any]]
    object_rules: list[dict[str, Any]]
    tables: dict[str, TableOptions]

    def target_tables(self) -> list[str]:
        names = [target_name(rule["target-table-name"]) for rule in self.object_rules]
        return list(dict.fromkeys(names))


def target_name(name: str) -> str:
    env = settings.LIZZY_ENV
    if "{env}" in name:
        return name.replace("{env}", env) if env else name.replace("-{env}", "").replace("{env}", "")
    return name


def _rule_name(rule: dict[str, Any], index: int) -> str:
    return str(rule.get("rule-name") or rule.get("rule-id") or f"#{index + 1}")


def _require(condition: bool, rule: str, field_name: str, problem: str) -> None:
    if not condition:
        raise MappingError(rule, field_name, problem)


def mapping_parse(*, document: Any) -> TableMapping:
    """Check a mapping's structure and templates; nothing needs the source yet."""
    _require(isinstance(document, dict) and isinstance(document.get("rules"), list), "-", "rules", ERR_NOT_JSON_OBJECT)
    selections, object_rules = [], []
    for index, rule in enumerate(document["rules"]):
        name = _rule_name(rule, index) if isinstance(rule, dict) else f"#{index + 1}"
        _require(isinstance(rule, dict), name, "rule", "each rule must be a JSON object")
        rule_type = rule.get("rule-type")
        locator = rule.get("object-locator")
        if rule_type == "selection":
            _require(isinstance(locator, dict), name, "object-locator", "required for a selection rule")
            _require("table-name" in locator, name, "object-locator.table-name", "required")
            _require(
                rule.get("rule-action") in {"include", "exclude", "explicit"},
                name,
                "rule-action",
                "must be include, exclude or explicit",
            )
            selections.append(rule)
        elif rule_type == "object-mapping":
            _check_object_rule(rule, name)
            object_rules.append(rule)
        elif rule_type == "transformation":
            raise MappingError(name, "rule-type", "transformation rules are not supported for DynamoDB targets")
        else:
            raise MappingError(name, "rule-type", f"unknown rule type {rule_type!r} (selection, object-mapping)")
    tables: dict[str, TableOptions] = {}
    for table, options in (document.get("tables") or {}).items():
        _require(isinstance(options, dict), "tables", f"tables.{table}", "must be an object")
        indexes = []
        for position, gsi in enumerate(options.get("global-secondary-indexes", [])):
            field_name = f"tables.{table}.global-secondary-indexes[{position}]"
            _require(
                isinstance(gsi, dict) and gsi.get("index-name") and gsi.get("partition-key-name"),
                "tables",
                field_name,
                "needs index-name and partition-key-name",
            )
            types = gsi.get("key-types", {})
            indexes.append(
                IndexSpec(
                    gsi["index-name"],
                    (gsi["partition-key-name"], types.get(gsi["partition-key-name"], "S")),
                    (gsi["sort-key-name"], types.get(gsi["sort-key-name"], "S")) if gsi.get("sort-key-name") else None,
                )
            )
        tables[target_name(table)] = TableOptions(indexes=indexes, ttl_attribute=options.get("ttl-attribute"))
    _require(bool(object_rules or selections), "-", "rules", ERR_NO_ENTITIES)
    return TableMapping(raw=document, selections=selections, object_rules=object_rules, tables=tables)


def _check_object_rule(rule: dict[str, Any], name: str) -> None:
    _require(
        rule.get("rule-action") in RULE_ACTIONS,
        name,
        "rule-action",
        f"must be one of {', '.join(sorted(RULE_ACTIONS))}, not {rule.get('rule-action')!r}",
    )
    locator = rule.get("object-locator")
    if "source-query" not in rule:
        _require(
            isinstance(locator, dict) and bool(locator.get("table-name")),
            name,
            "object-locator.table-name",
            "required (or give a source-query)",
        )
    else:
        _require(
            isinstance(rule["source-query"], str)
            and rule["source-query"].strip().lower().startswith(("select", "with")),
            name,
            "source-query",
            "must be a SELECT query",
        )
        _require(bool(rule.get("source-key")), name, "source-key", "required with source-query (the paging key)")
    _require(
        isinstance(rule.get("target-table-name"), str) and 3 <= len(target_name(rule["target-table-name"])) <= 255,
        name,
        "target-table-name",
        "required, 3 to 255 characters",
    )
    params = rule.get("mapping-parameters", {})
    _require(isinstance(params, dict), name, "mapping-parameters", "must be an object")
    # BatchWriteItem takes no conditions: ignoring a DMS condition would silently change what is written.
    _require(
        "condition-expression" not in params,
        name,
        "mapping-parameters.condition-expression",
        "condition expressions are not supported (BatchWriteItem has no conditions)",
    )
    _require(
        isinstance(params.get("exclude-columns", []), list),
        name,
        "mapping-parameters.exclude-columns",
        "must be a list of column names",
    )
    seen: set[str] = set()
    for position, attribute in enumerate(params.get("attribute-mappings", [])):
        prefix = f"mapping-parameters.attribute-mappings[{position}]"
        _require(isinstance(attribute, dict), name, prefix, "must be an object")
        target = attribute.get("target-attribute-name")
        _require(isinstance(target, str) and bool(target), name, f"{prefix}.target-attribute-name", "required")
        _require(target not in seen, name, f"{prefix}.target-attribute-name", f"{target!r} is mapped twice")
        seen.add(target)
        kind = attribute.get("attribute-type")
        _require(kind in SUB_TYPES, name, f"{prefix}.attribute-type", "must be scalar or document")
        sub_type = attribute.get("attribute-sub-type", "string" if kind == "scalar" else "dynamodb-map")
        _require(
            sub_type in SUB_TYPES[kind],
            name,
            f"{prefix}.attribute-sub-type",
            f"must be one of {', '.join(sorted(SUB_TYPES[kind]))} for {kind}",
        )
        value = attribute.get("value")
        if sub_type == "dynamodb-map":
            _require(
                isinstance(value, dict) and len(value) == 1 and "M" in value,
                name,
                f"{prefix}.value",
                'a dynamodb-map value is {"M": {...}} in DynamoDB JSON',
            )
        else:
            _require(isinstance(value, str), name, f"{prefix}.value", "must be a template string")
        try:
            _compile_value(value)
        except TemplateError as exc:
            raise MappingError(name, f"{prefix}.value", exc.message) from exc
    if rule.get("ttl") is not None:
        try:
            Template.parse(rule["ttl"])
        except (TemplateError, AttributeError) as exc:
            raise MappingError(name, "ttl", getattr(exc, "message", "must be a template string")) from exc
    _require(isinstance(rule.get("timestamps", {}), dict), name, "timestamps", "must map attribute to column")


def _compile_value(value: Any) -> Any:
    if isinstance(value, str):
        return Template.parse(value)
    if isinstance(value, dict):
        return {key: _compile_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_value(item) for item in value]
    return value


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.replace("%", "*").lower())


def _selected(mapping: TableMapping, schema: str, table: str, ignore_schema: bool) -> bool:
    included = False
    for rule in mapping.selections:
        locator = rule["object-locator"]
        schema_ok = ignore_schema or _like(locator.get("schema-name", "%"), schema)
        if schema_ok and _like(locator["table-name"], table):
            if rule["rule-action"] == "exclude":
                return False
            included = True
    return included or not mapping.selections


def mapping_resolve(*, mapping: TableMapping, source: Any) -> list[EntityMapping]:
    """Bind rules to the source: wildcards expanded, columns and keys checked. Raises MappingError."""
    entities: list[EntityMapping] = []
    ignore_schema = source.ignores_schema
    tables = source.tables()
    mapped: set[tuple[str, str]] = set()
    for index, rule in enumerate(mapping.object_rules):
        name = _rule_name(rule, index)
        if "source-query" in rule:
            entities.append(_entity(rule, name, source, schema="", table=None))
            continue
        locator = rule["object-locator"]
        matches = [
            (schema, table)
            for schema, table in tables
            if (ignore_schema or _like(locator.get("schema-name", "%"), schema)) and _like(locator["table-name"], table)
        ]
        _require(
            bool(matches),
            name,
            "object-locator",
            f"no source table matches {locator.get('schema-name', '%')}.{locator['table-name']}",
        )
        for schema, table in matches:
            if mapping.selections and not _selected(mapping, schema, table, ignore_schema):
                continue
            mapped.add((schema, table))
            entities.append(_entity(rule, name, source, schema=schema, table=table))
    for schema, table in tables:
        if (schema, table) in mapped or not mapping.selections or not _selected(mapping, schema, table, ignore_schema):
            continue
        # A selected table without an object mapping: DMS copies it record-to-record into a table of its name.
        if not mapping.object_rules:
            default_rule = {"rule-action": "map-record-to-record", "target-table-name": table, "mapping-parameters": {}}
            entities.append(_entity(default_rule, f"selection:{table}", source, schema=schema, table=table))
    _require(bool(entities), "-", "rules", ERR_NO_ENTITIES)
    return entities


def _entity(rule: dict[str, Any], name: str, source: Any, *, schema: str, table: str | None) -> EntityMapping:
    params = rule.get("mapping-parameters", {})
    query = rule.get("source-query")
    columns = source.columns(schema=schema, table=table, query=query)
    primary = list(rule.get("source-key") or (source.primary_key(schema=schema, table=table) if table else []))
    known = set(columns)
    for column in primary:
        _require(
            column in known, name, "source-key", ERR_UNKNOWN_COLUMN.format(column=column, columns=", ".join(columns))
        )
    attributes = []
    for position, attribute in enumerate(params.get("attribute-mappings", [])):
        kind = attribute["attribute-type"]
        sub_type = attribute.get("attribute-sub-type", "string" if kind == "scalar" else "dynamodb-map")
        compiled = _compile_value(attribute["value"])
        mapping = AttributeMapping(
            target=attribute["target-attribute-name"],
            kind=kind,
            sub_type=sub_type,
            template=compiled if isinstance(compiled, Template) else None,
            document=None if isinstance(compiled, Template) else compiled,
        )
        for column in mapping.columns():
            _require(
                column in known,
                name,
                f"mapping-parameters.attribute-mappings[{position}].value",
                ERR_UNKNOWN_COLUMN.format(column=column, columns=", ".join(columns)),
            )
        attributes.append(mapping)
    exclude = set(params.get("exclude-columns", []))
    for column in exclude:
        _require(
            column in known,
            name,
            "mapping-parameters.exclude-columns",
            ERR_UNKNOWN_COLUMN.format(column=column, columns=", ".join(columns)),
        )
    partition = params.get("partition-key-name") or (primary[0] if primary else None)
    sort = params.get("sort-key-name") or (
        primary[1] if not params.get("partition-key-name") and len(primary) > 1 else None
    )
    _require(bool(partition), name, "mapping-parameters.partition-key-name", ERR_NO_KEY)
    produced = {attribute.target for attribute in attributes} | (set(columns) - exclude)
    for key_field, key_name in (("partition-key-name", partition), ("sort-key-name", sort)):
        if key_name:
            _require(
                key_name in produced,
                name,
                f"mapping-parameters.{key_field}",
                ERR_KEY_NOT_PRODUCED.format(name=key_name),
            )
    ttl = Template.parse(rule["ttl"]) if rule.get("ttl") else None
    for column in (ttl.columns() if ttl else set()) | set(rule.get("timestamps", {}).values()):
        _require(
            column in known,
            name,
            "ttl/timestamps",
            ERR_UNKNOWN_COLUMN.format(column=column, columns=", ".join(columns)),
        )
    changed = rule.get("changed-at-column")
    if changed:
        _require(
            changed in known,
            name,
            "changed-at-column",
            ERR_UNKNOWN_COLUMN.format(column=changed, columns=", ".join(columns)),
        )
    key_types = dict(rule.get("key-types", {}))
    declared = source.column_types(schema=schema, table=table, query=query)
    for key_name in (partition, sort):
        if key_name and key_name not in key_types:
            key_types[key_name] = _key_type(key_name, attributes, declared)
    for attribute in attributes:
        if attribute.template and "hmac_sha256" in attribute.template.source and not settings.LIZZY_MAPPING_HMAC_KEY:
            raise MappingError(name, attribute.target, "hmac_sha256 needs LIZZY_MAPPING_HMAC_KEY, which is not set")
    return EntityMapping(
        rule=name,
        schema=schema,
        table=table,
        query=query,
        action=rule["rule-action"],
        target_table=target_name(rule["target-table-name"]),
        partition_key=partition,
        sort_key=sort,
        exclude=exclude,
        attributes=attributes,
        entity_type=rule.get("entity-type"),
        ttl=ttl,
        timestamps=dict(rule.get("timestamps", {})),
        keep_nulls=bool(rule.get("keep-nulls", False)),
        changed_at_column=changed,
        document_attribute=rule.get("document-attribute-name", "_doc"),
        source_key=primary,
        key_types=key_types,
        columns=columns,
        column_types=dict(rule.get("column-types", {})),
    )


_NUMERIC = re.compile(r"INT|NUMERIC|DECIMAL|REAL|DOUBLE|FLOAT|SERIAL", re.IGNORECASE)


def _key_type(key_name: str, attributes: list[AttributeMapping], declared: dict[str, str]) -> str:
    for attribute in attributes:
        if attribute.target == key_name:
            if attribute.sub_type == "number":
                return "N"
            if attribute.sub_type == "native" and attribute.template and attribute.template.single:
                column = next(iter(attribute.template.columns()), None)
                return "N" if column and _NUMERIC.search(declared.get(column, "")) else "S"
            return "S"
    return "N" if _NUMERIC.search(declared.get(key_name, "")) else "S"


def table_specs(*, mapping: TableMapping, entities: list[EntityMapping]) -> list[TableSpec]:
    """The DynamoDB tables a mapping writes: keys from its rules, GSIs and TTL from ``tables``."""
    specs: dict[str, TableSpec] = {}
    for entity in entities:
        if entity.target_table in specs:
            spec = specs[entity.target_table]
            if (spec.partition_key[0], spec.sort_key[0] if spec.sort_key else None) != (
                entity.partition_key,
                entity.sort_key,
            ):
                raise MappingError(
                    entity.rule,
                    "mapping-parameters.partition-key-name",
                    f"table {entity.target_table} gets different keys from two rules",
                )
            continue
        options = mapping.tables.get(entity.target_table, TableOptions())
        specs[entity.target_table] = TableSpec(
            base_name=entity.target_table,
            partition_key=(entity.partition_key, entity.key_types.get(entity.partition_key, "S")),
            sort_key=(entity.sort_key, entity.key_types.get(entity.sort_key, "S")) if entity.sort_key else None,
            indexes=tuple(options.indexes),
            ttl_attribute=options.ttl_attribute or ("ttl" if entity.ttl else None),
            description=f"Migration target ({entity.rule}).",
        )
    return list(specs.values())
