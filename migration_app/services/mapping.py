"""Table mappings (the pipeline's transform stage): AWS DMS's JSON, plus the extensions a single-table design needs.

DMS semantics, strictly (AWS DMS user guide: "Selection rules and actions", "Using source filters", "Using
an Amazon DynamoDB database as a target"):

* ``selection`` rules with ``include`` / ``exclude`` / ``explicit``; ``%`` (any run) and ``_`` (one character)
  wildcards in schema and table names; names compared exactly (case-sensitive). ``explicit`` takes no
  wildcards. Source ``filters`` (include rules, exact table names): filters ANDed, conditions inside one
  filter ORed, a negative operator (``noteq``, ``notbetween``, ``notnull``) alone in its filter; every DMS
  operator (``lte``, ``ste``, ``gte``, ``eq``, ``noteq``, ``between``, ``notbetween``, ``null``,
  ``notnull``), pushed into the source query.
* Every selected table is migrated: by the object-mapping rules that name it, otherwise record-to-record
  into a table of its own name ("as many tables as in the source"), or refused before anything is written.
* ``object-mapping`` rules with ``map-record-to-record`` / ``map-record-to-document``,
  ``partition-key-name``, ``sort-key-name``, ``exclude-columns``, ``attribute-mappings`` (``scalar``:
  ``string`` / ``number``; ``document``: ``dynamodb-map`` whose leaves keep their DynamoDB type S, N, BOOL,
  NULL, B, L, M); NULL columns not written.
* Any unknown or misspelt key is an error naming its JSON path and the nearest valid key.

Keys are never truncated: a source key of three or more columns needs an object-mapping that says how to
combine them. Two rows that give one item key are an error by default (``key-collisions: "last-wins"`` on
the rule chooses the other documented policy); a NULL or empty key attribute is a row error.

Extensions (docs/MIGRATIONS.md): on an object-mapping rule ``source-query``, ``source-key``, ``entity-type``,
``ttl``, ``timestamps``, ``keep-nulls``, ``changed-at-column``, ``document-attribute-name``, ``key-types``,
``column-types``, ``key-collisions``; ``attribute-sub-type: "native"``; top level ``tables``; ``{env}`` in
table names. Functions in templates are listed in :mod:`migration_app.services.templates`; values follow
:mod:`migration_app.services.types`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from lizzy.errors import ApplicationError
from lizzy.exact_json import exact_json
from lizzy.tables import IndexSpec, TableSpec
from migration_app.services import mapping_keys as keys
from migration_app.services.templates import Template, TemplateError
from migration_app.services.types import (
    ERR_TYPE_REFUSED,
    ValueRefused,
    exact_number,
    storable,
    timestamp_text,
    type_family,
)
from migration_app.sources import FilterCondition, SourceFilter
from migration_app.sources.base import FILTER_OPERATORS, NEGATIVE_OPERATORS

RULE_ACTIONS = {"map-record-to-record", "map-record-to-document"}
SELECTION_ACTIONS = {"include", "exclude", "explicit"}
SUB_TYPES = {"scalar": {"string", "number", "native"}, "document": {"dynamodb-map", "json"}}
MAP_TYPES = {"S", "N", "BOOL", "NULL", "B", "L", "M"}
COLLISION_POLICIES = ("error", "last-wins")

ERR_MAPPING = "Rule {rule}: {field}: {problem}"
ERR_NOT_JSON_OBJECT = "the mapping must be a JSON object with a 'rules' list"
ERR_NO_ENTITIES = "no object-mapping rule and no selected table: nothing would be migrated"
ERR_UNKNOWN_COLUMN = "column {column!r} is not in the source (columns: {columns})"
ERR_NO_KEY = "no partition key: set partition-key-name, or give the source table a primary key"
ERR_KEY_NOT_PRODUCED = "key attribute {name!r} is neither an attribute mapping nor a column carried over"
ERR_NUMBER_VALUE = "value {value!r} of {attribute!r} is not a number"
ERR_BOOL_VALUE = "value {value!r} at {path} is not a boolean"
ERR_WIDE_KEY = (
    "table {table}: its primary key ({columns}) has {count} columns and a DynamoDB key has at most two; "
    "add an object-mapping rule whose partition-key-name / sort-key-name attributes combine them "
    '(for example a sort key "${{{second}}}#${{{third}}}")'
)
ERR_KEY_NULL = "key attribute {name!r} would be built from NULL column(s) {columns}: the row has no key"
ERR_KEY_EMPTY = "key attribute {name!r} is empty: DynamoDB refuses empty key values"
ERR_TABLE_TWICE = "table {table} would receive rows of {first} and {second} with the same keys (two source tables)"
ERR_FILTER_WILDCARD = "filters need an exact table name (DMS: filters do not support wildcards)"
ERR_FILTER_ACTION = "filters apply only to rule-action include"
ERR_NEGATIVE_ALONE = "a negative operator ({operator}) must be the only condition of its filter"
ERR_EXPLICIT_WILDCARD = "explicit selects exactly one table: no % wildcard (its name is compared exactly)"


class MappingError(ApplicationError):
    code = "invalid_mapping"

    def __init__(self, rule: str, field_name: str, problem: str) -> None:
        super().__init__(
            ERR_MAPPING.format(rule=rule, field=field_name, problem=problem),
            details={"rule": rule, "field": field_name, "problem": problem},
        )


class RowError(ApplicationError):
    """One source row cannot become an item (the run quarantines it or stops; never a raw traceback)."""

    code = "row_error"


@dataclass(frozen=True)
class AttributeMapping:
    target: str
    kind: str  # scalar | document
    sub_type: str
    template: Template | None = None
    document: Any = None  # dynamodb-map: {"M": {...}} with templates in its typed leaves

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
    """One object-mapping rule (or one selected table without one) resolved against one source relation."""

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
    declared_types: dict[str, str] = field(default_factory=dict)
    filters: tuple[SourceFilter, ...] = ()
    collisions: str = "error"
    key_columns: dict[str, set[str]] = field(default_factory=dict)  # key attribute → columns it is built from

    @property
    def name(self) -> str:
        return f"{self.rule}:{self.table or 'query'}"

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.partition_key, *([self.sort_key] if self.sort_key else []))

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item.get(name) for name in self.key_names}

    def carried_columns(self) -> list[str]:
        """Columns copied under their own name (record-to-record) or into the document (record-to-document)."""
        mapped = {attribute.target for attribute in self.attributes}
        return [c for c in self.columns if c not in self.exclude and not c.startswith("__") and c not in mapped]

    def transform(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One source row → one item. Raises RowError (naming the attribute) when the row cannot be stored."""
        try:
            item = self._transform(row)
        except (ValueRefused, TemplateError, MappingError) as exc:
            raise RowError(exc.message) from exc
        for name, columns in self._key_checks():
            for column in columns:
                if row.get(column) is None:
                    nulls = sorted(column for column in columns if row.get(column) is None)
                    raise RowError(ERR_KEY_NULL.format(name=name, columns=", ".join(nulls)))
            value = item.get(name)
            if value is None:
                raise RowError(ERR_KEY_NULL.format(name=name, columns=name))
            if value == "" or value == b"":
                raise RowError(ERR_KEY_EMPTY.format(name=name))
        return item

    def _copied(self, row: Mapping[str, Any]) -> list[str]:
        """The row's columns copied into the item (computed once: every row of a relation has the same)."""
        names = self.__dict__.get("_copy_names")
        if names is None or len(names[1]) != len(row):
            listed = [name for name in row if name not in self.exclude and name[:2] != "__"]
            names = (listed, tuple(row))
            self.__dict__["_copy_names"] = names
        return names[0]

    def _key_checks(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        checks = self.__dict__.get("_checks")
        if checks is None:
            checks = tuple((name, tuple(sorted(self.key_columns.get(name, ())))) for name in self.key_names)
            self.__dict__["_checks"] = checks
        return checks

    def _transform(self, row: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {}
        keep_nulls = self.keep_nulls
        # str, int, bool and Decimal are stored as they are: the codec refuses a number DynamoDB cannot hold
        # exactly (over 38 digits, out of range, NaN) naming the attribute, and the row is a bad row.
        carried = {}
        for name in self._copied(row):
            value = row[name]
            if value is None:
                if keep_nulls:
                    carried[name] = None
            else:
                carried[name] = value if type(value) in _AS_IS else storable(value, name)
        if self.action == "map-record-to-record":
            item.update(carried)
        else:
            for key_name in self.key_names:
                if key_name in carried:
                    item[key_name] = carried.pop(key_name)
            item[self.document_attribute] = carried
        for mapping in self.attributes:
            value = _attribute_value(mapping, row, self.rule)
            if value is None and not keep_nulls:
                item.pop(mapping.target, None)
                continue
            item[mapping.target] = value
        if self.entity_type:
            item["entity_type"] = self.entity_type
        for attribute, column in self.timestamps.items():
            value = row.get(column)
            if isinstance(value, (dt.datetime, str)) and value != "":
                item[attribute] = timestamp_text(_as_datetime(value))
        if self.ttl:
            value = self.ttl.value(row)
            if value is not None:
                item["ttl"] = int(value)
        return item


_AS_IS = frozenset({str, int, bool, Decimal})


def _as_datetime(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# What DynamoDB (and DMS) read as a number; Python's Decimal also takes "1_000" and non-ASCII digits ("١٢").
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


def _number(text: str, path: str) -> Decimal | int:
    if not _NUMBER_TEXT.fullmatch(text):
        raise ValueRefused(ERR_NUMBER_VALUE.format(value=text, attribute=path))
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueRefused(ERR_NUMBER_VALUE.format(value=text, attribute=path)) from exc
    number = exact_number(number, path)
    if number == number.to_integral_value() and "." not in text and "e" not in text.lower():
        return int(number)
    return number


def _attribute_value(mapping: AttributeMapping, row: Mapping[str, Any], rule: str) -> Any:
    if mapping.template is not None:
        if mapping.sub_type == "native":
            return storable(mapping.template.value(row), mapping.target)
        if mapping.template.single and mapping.template.value(row) is None:
            return None
        text = mapping.template.render(row)
        if mapping.sub_type == "number":
            return _number(text, mapping.target)
        if mapping.kind == "document" and mapping.sub_type == "json":
            return storable(exact_json(text), mapping.target)
        return text
    return _typed_value(mapping.document, row, mapping.target)


_MISSING = object()


def _typed_value(node: dict[str, Any], row: Mapping[str, Any], path: str) -> Any:
    """A dynamodb-map node → its value, keeping the DynamoDB type the mapping gives (DMS semantics).

    A leaf that is a single ``${expr}`` whose value is NULL is left out of its map (DMS writes no NULLs);
    in a longer template NULL reads as an empty string.
    """
    ((kind, body),) = node.items()
    if kind == "M":
        out = {}
        for name, child in body.items():
            value = _typed_value(child, row, f"{path}.{name}")
            if value is not _MISSING:
                out[name] = value
        return out
    if kind == "L":
        values = [_typed_value(child, row, f"{path}[{index}]") for index, child in enumerate(body)]
        return [None if value is _MISSING else value for value in values]
    if kind == "NULL":
        return None
    if not isinstance(body, Template):
        return storable(body, path)
    if body.single:
        value = body.value(row)
        if value is None:
            return _MISSING
    else:
        value = body.render(row)
    if kind == "S":
        return value if isinstance(value, str) else body.render(row)
    if kind == "N":
        if isinstance(value, (int, Decimal, float)) and not isinstance(value, bool):
            return storable(value, path)
        return _number(str(value), path)
    if kind == "BOOL":
        return _boolean(value, path)
    if kind == "B":
        return value if isinstance(value, bytes) else str(value).encode()
    raise ValueRefused(f"{path}: unknown DynamoDB type {kind}")  # pragma: no cover (checked at parse time)


_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueRefused(ERR_BOOL_VALUE.format(value=value, path=path))


@dataclass
class TableOptions:
    indexes: list[IndexSpec] = field(default_factory=list)
    ttl_attribute: str | None = None


@dataclass
class TableMapping:
    """A checked mapping: rules, table options; ``mapping_resolve`` binds it to a source's tables and columns."""

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


def _known_keys(node: Any, allowed: frozenset[str], rule: str, path: str) -> None:
    problem = keys.unknown_key_problem(keys.keys_of(node), allowed, path)
    if problem:
        raise MappingError(rule, path, problem)


def mapping_parse(*, document: Any) -> TableMapping:
    """Check a mapping's structure, keys and templates; nothing needs the source yet."""
    _require(isinstance(document, dict) and isinstance(document.get("rules"), list), "-", "rules", ERR_NOT_JSON_OBJECT)
    _known_keys(document, keys.TOP_LEVEL, "-", "$")
    selections, object_rules = [], []
    for index, rule in enumerate(document["rules"]):
        name = _rule_name(rule, index) if isinstance(rule, dict) else f"#{index + 1}"
        _require(isinstance(rule, dict), name, "rule", "each rule must be a JSON object")
        rule_type = rule.get("rule-type")
        if rule_type == "selection":
            _check_selection_rule(rule, name)
            selections.append(rule)
        elif rule_type == "object-mapping":
            _known_keys(rule, keys.OBJECT_RULE, name, f"rules[{index}]")
            _check_object_rule(rule, name)
            object_rules.append(rule)
        elif rule_type == "transformation":
            raise MappingError(name, "rule-type", "transformation rules are not supported for DynamoDB targets")
        else:
            raise MappingError(name, "rule-type", f"unknown rule type {rule_type!r} (selection, object-mapping)")
    tables: dict[str, TableOptions] = {}
    _require(isinstance(document.get("tables") or {}, dict), "tables", "tables", "must be an object")
    for table, options in (document.get("tables") or {}).items():
        _require(isinstance(options, dict), "tables", f"tables.{table}", "must be an object")
        _known_keys(options, keys.TABLE_OPTIONS, "tables", f"tables.{table}")
        indexes = []
        for position, gsi in enumerate(options.get("global-secondary-indexes", [])):
            field_name = f"tables.{table}.global-secondary-indexes[{position}]"
            _known_keys(gsi, keys.GSI, "tables", field_name)
            _require(
                isinstance(gsi, dict) and gsi.get("index-name") and gsi.get("partition-key-name"),
                "tables",
                field_name,
                "needs index-name and partition-key-name",
            )
            types = gsi.get("key-types", {})
            for attribute, key_type in types.items() if isinstance(types, dict) else [("key-types", types)]:
                _require(
                    key_type in _DYNAMODB_KEY_TYPES,
                    "tables",
                    f"{field_name}.key-types.{attribute}",
                    f"{key_type!r} is not a DynamoDB key type ({', '.join(_DYNAMODB_KEY_TYPES)})",
                )
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


def _has_wildcard(name: str) -> bool:
    # Only %: "_" is DMS's one-character wildcard in include/exclude, but table names are full of
    # underscores, and explicit rules and filters compare the name exactly (underscore included).
    return "%" in name


def _check_selection_rule(rule: dict[str, Any], name: str) -> None:
    _known_keys(rule, keys.SELECTION_RULE, name, "rule")
    locator = rule.get("object-locator")
    _require(isinstance(locator, dict), name, "object-locator", "required for a selection rule")
    _known_keys(locator, keys.SELECTION_LOCATOR, name, "object-locator")
    _require(isinstance(locator.get("table-name"), str), name, "object-locator.table-name", "required")
    _require(
        locator.get("table-type", "table") == "table",
        name,
        "object-locator.table-type",
        "only tables are migrated (views and 'all' are not implemented)",
    )
    action = rule.get("rule-action")
    _require(action in SELECTION_ACTIONS, name, "rule-action", "must be include, exclude or explicit")
    if action == "explicit":
        _require(
            not _has_wildcard(locator["table-name"]) and not _has_wildcard(locator.get("schema-name", "")),
            name,
            "object-locator",
            ERR_EXPLICIT_WILDCARD,
        )
    filters = rule.get("filters", [])
    _require(isinstance(filters, list), name, "filters", "must be a list")
    if filters:
        _require(action in ("include", "explicit"), name, "filters", ERR_FILTER_ACTION)
        _require(not _has_wildcard(locator["table-name"]), name, "filters", ERR_FILTER_WILDCARD)
    for position, source_filter in enumerate(filters):
        path = f"filters[{position}]"
        _require(isinstance(source_filter, dict), name, path, "must be an object")
        _known_keys(source_filter, keys.FILTER, name, path)
        _require(source_filter.get("filter-type", "source") == "source", name, f"{path}.filter-type", "must be source")
        _require(isinstance(source_filter.get("column-name"), str), name, f"{path}.column-name", "required")
        conditions = source_filter.get("filter-conditions")
        _require(
            isinstance(conditions, list) and bool(conditions), name, f"{path}.filter-conditions", "a non-empty list"
        )
        for number, condition in enumerate(conditions):
            cpath = f"{path}.filter-conditions[{number}]"
            _require(isinstance(condition, dict), name, cpath, "must be an object")
            _known_keys(condition, keys.FILTER_CONDITION, name, cpath)
            operator = condition.get("filter-operator")
            _require(
                operator in FILTER_OPERATORS,
                name,
                f"{cpath}.filter-operator",
                f"must be one of {', '.join(FILTER_OPERATORS)}",
            )
            if operator in NEGATIVE_OPERATORS:
                _require(
                    len(conditions) == 1, name, f"{cpath}.filter-operator", ERR_NEGATIVE_ALONE.format(operator=operator)
                )
            arity = FILTER_OPERATORS[operator][0]
            wanted = {0: set(), 1: {"value"}, 2: {"start-value", "end-value"}}[arity]
            given = set(condition) - {"filter-operator"}
            _require(
                given == wanted,
                name,
                cpath,
                f"{operator} takes {', '.join(sorted(wanted)) or 'no value'}, not {', '.join(sorted(given)) or 'none'}",
            )
            for value_key in wanted:
                _require(
                    isinstance(condition[value_key], (str, int, float)) and not isinstance(condition[value_key], bool),
                    name,
                    f"{cpath}.{value_key}",
                    "must be a string or a number",
                )


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
        _known_keys(locator, keys.OBJECT_LOCATOR, name, "object-locator")
    else:
        _require(
            isinstance(rule["source-query"], str)
            and rule["source-query"].strip().lower().startswith(("select", "with", "scan match ")),
            name,
            "source-query",
            "must be a SELECT query (or, for a redis:// source, SCAN MATCH pattern)",
        )
        _require(bool(rule.get("source-key")), name, "source-key", "required with source-query (the paging key)")
    _require(
        isinstance(rule.get("target-table-name"), str) and 3 <= len(target_name(rule["target-table-name"])) <= 255,
        name,
        "target-table-name",
        "required, 3 to 255 characters",
    )
    _require(
        rule.get("key-collisions", "error") in COLLISION_POLICIES,
        name,
        "key-collisions",
        f"must be one of {', '.join(COLLISION_POLICIES)}",
    )
    params = rule.get("mapping-parameters", {})
    _require(isinstance(params, dict), name, "mapping-parameters", "must be an object")
    _known_keys(params, keys.MAPPING_PARAMETERS, name, "mapping-parameters")
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
    _require(
        isinstance(params.get("attribute-mappings", []), list),
        name,
        "mapping-parameters.attribute-mappings",
        "must be a list of attribute mappings",
    )
    seen: set[str] = set()
    for position, attribute in enumerate(params.get("attribute-mappings", [])):
        prefix = f"mapping-parameters.attribute-mappings[{position}]"
        _require(isinstance(attribute, dict), name, prefix, "must be an object")
        _known_keys(attribute, keys.ATTRIBUTE_MAPPING, name, prefix)
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
            _check_typed(value, name, f"{prefix}.value")
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
    _check_extension_shapes(rule, name)


_DYNAMODB_KEY_TYPES = ("S", "N", "B")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}")  # DynamoDB's table naming rule


def _check_extension_shapes(rule: dict[str, Any], name: str) -> None:
    """The extensions' values have one shape each: a wrong one is an error, never read as something else."""
    for flag in ("keep-nulls",):
        _require(isinstance(rule.get(flag, False), bool), name, flag, "must be true or false")
    for text in ("entity-type", "changed-at-column", "document-attribute-name"):
        if text in rule:
            _require(isinstance(rule[text], str) and bool(rule[text]), name, text, "must be a non-empty string")
    if "source-key" in rule:
        _require(
            isinstance(rule["source-key"], list) and all(isinstance(c, str) and c for c in rule["source-key"]),
            name,
            "source-key",
            'must be a list of column names, for example ["id"]',
        )
    for mapping_field in ("key-types", "column-types"):
        value = rule.get(mapping_field, {})
        _require(
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
            name,
            mapping_field,
            "must map names to type names",
        )
    for attribute, key_type in rule.get("key-types", {}).items():
        _require(
            key_type in _DYNAMODB_KEY_TYPES,
            name,
            f"key-types.{attribute}",
            f"{key_type!r} is not a DynamoDB key type ({', '.join(_DYNAMODB_KEY_TYPES)})",
        )


def _check_typed(node: Any, rule: str, path: str) -> None:
    """A dynamodb-map node is ``{TYPE: body}`` with TYPE one of S, N, BOOL, NULL, B, L, M."""
    _require(isinstance(node, dict) and len(node) == 1, rule, path, "each node is {TYPE: value} in DynamoDB JSON")
    ((kind, body),) = node.items()
    _require(
        kind in MAP_TYPES, rule, f"{path}.{kind}", f"unknown DynamoDB type (valid: {', '.join(sorted(MAP_TYPES))})"
    )
    if kind == "M":
        _require(isinstance(body, dict), rule, f"{path}.M", "must be an object")
        for name, child in body.items():
            _check_typed(child, rule, f"{path}.M.{name}")
    elif kind == "L":
        _require(isinstance(body, list), rule, f"{path}.L", "must be a list")
        for index, child in enumerate(body):
            _check_typed(child, rule, f"{path}.L[{index}]")
    elif kind == "NULL":
        _require(body is True, rule, f"{path}.NULL", "must be true")
    else:
        _require(isinstance(body, str), rule, f"{path}.{kind}", "must be a template string")


def _compile_value(value: Any) -> Any:
    if isinstance(value, str):
        return Template.parse(value)
    if isinstance(value, dict):
        return {key: _compile_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_value(item) for item in value]
    return value


def like(pattern: str, value: str) -> bool:
    """DMS name matching: ``%`` any run, ``_`` one character, everything else exact (case-sensitive)."""
    regex = "".join(".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _locator_matches(locator: dict[str, Any], schema: str, table: str, ignore_schema: bool) -> bool:
    schema_ok = ignore_schema or like(locator.get("schema-name", "%"), schema)
    return schema_ok and like(locator["table-name"], table)


def _selected(mapping: TableMapping, schema: str, table: str, ignore_schema: bool) -> bool:
    """DMS: a table is migrated when an include/explicit rule selects it and no exclude rule does."""
    included = False
    for rule in mapping.selections:
        locator = rule["object-locator"]
        if rule["rule-action"] == "explicit":
            matched = (ignore_schema or locator.get("schema-name", schema) == schema) and locator["table-name"] == table
        else:
            matched = _locator_matches(locator, schema, table, ignore_schema)
        if matched:
            if rule["rule-action"] == "exclude":
                return False
            included = True
    return included or not mapping.selections


def _filters_for(mapping: TableMapping, schema: str, table: str, ignore_schema: bool) -> tuple[SourceFilter, ...]:
    found = []
    for rule in mapping.selections:
        if rule["rule-action"] == "exclude" or not rule.get("filters"):
            continue
        if not _locator_matches(rule["object-locator"], schema, table, ignore_schema):
            continue
        for source_filter in rule["filters"]:
            found.append(
                SourceFilter(
                    source_filter["column-name"],
                    tuple(
                        FilterCondition(
                            condition["filter-operator"],
                            tuple(
                                str(condition[key]) for key in ("value", "start-value", "end-value") if key in condition
                            ),
                        )
                        for condition in source_filter["filter-conditions"]
                    ),
                )
            )
    return tuple(found)


def mapping_resolve(*, mapping: TableMapping, source: Any) -> list[EntityMapping]:
    """Bind rules to the source: wildcards expanded, columns, keys and types checked. Raises MappingError."""
    entities: list[EntityMapping] = []
    ignore_schema = source.ignores_schema
    tables = source.tables()
    mapped: set[tuple[str, str]] = set()
    for index, rule in enumerate(mapping.object_rules):
        name = _rule_name(rule, index)
        if "source-query" in rule:
            entities.append(_entity(rule, name, source, schema="", table=None, filters=()))
            continue
        locator = rule["object-locator"]
        matches = [
            (schema, table) for schema, table in tables if _locator_matches(locator, schema, table, ignore_schema)
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
            filters = _filters_for(mapping, schema, table, ignore_schema)
            entities.append(_entity(rule, name, source, schema=schema, table=table, filters=filters))
    for schema, table in tables:
        if (schema, table) in mapped or not mapping.selections or not _selected(mapping, schema, table, ignore_schema):
            continue
        # A selected table no object-mapping names: DMS copies it record-to-record into a table of its name.
        rule_name = next(
            (
                _rule_name(rule, index)
                for index, rule in enumerate(mapping.selections)
                if rule["rule-action"] != "exclude"
                and _locator_matches(rule["object-locator"], schema, table, ignore_schema)
            ),
            "selection",
        )
        default_rule = {"rule-action": "map-record-to-record", "target-table-name": table, "mapping-parameters": {}}
        filters = _filters_for(mapping, schema, table, ignore_schema)
        entities.append(
            _entity(default_rule, f"{rule_name}", source, schema=schema, table=table, filters=filters, default=True)
        )
    _require(bool(entities), "-", "rules", ERR_NO_ENTITIES)
    return entities


def _entity(
    rule: dict[str, Any],
    name: str,
    source: Any,
    *,
    schema: str,
    table: str | None,
    filters: tuple[SourceFilter, ...],
    default: bool = False,
) -> EntityMapping:
    params = rule.get("mapping-parameters", {})
    query = rule.get("source-query")
    columns = source.columns(schema=schema, table=table, query=query)
    primary = list(rule.get("source-key") or (source.primary_key(schema=schema, table=table) if table else []))
    known = set(columns)
    listing = ", ".join(columns)
    for column in primary:
        _require(column in known, name, "source-key", ERR_UNKNOWN_COLUMN.format(column=column, columns=listing))
    for position, source_filter in enumerate(filters):
        _require(
            source_filter.column in known,
            name,
            f"filters[{position}].column-name",
            ERR_UNKNOWN_COLUMN.format(column=source_filter.column, columns=listing),
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
                ERR_UNKNOWN_COLUMN.format(column=column, columns=listing),
            )
        attributes.append(mapping)
    exclude = set(params.get("exclude-columns", []))
    for column in exclude:
        _require(
            column in known,
            name,
            "mapping-parameters.exclude-columns",
            ERR_UNKNOWN_COLUMN.format(column=column, columns=listing),
        )
    partition = params.get("partition-key-name")
    sort = params.get("sort-key-name")
    if not partition:
        # Without key names the source's primary key is the item key, column for column: never truncated.
        _require(
            len(primary) <= 2,
            name,
            "mapping-parameters.partition-key-name",
            ERR_WIDE_KEY.format(
                table=f"{schema}.{table}" if table else "source-query",
                columns=", ".join(primary),
                count=len(primary),
                second=primary[1] if len(primary) > 1 else "",
                third=primary[2] if len(primary) > 2 else "",
            ),
        )
        partition = primary[0] if primary else None
        sort = sort or (primary[1] if len(primary) > 1 else None)
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
    key_columns: dict[str, set[str]] = {}
    for key_name in (partition, sort):
        if not key_name:
            continue
        mapped = next((attribute for attribute in attributes if attribute.target == key_name), None)
        key_columns[key_name] = mapped.columns() if mapped else {key_name}
    ttl = Template.parse(rule["ttl"]) if rule.get("ttl") else None
    for column in (ttl.columns() if ttl else set()) | set(rule.get("timestamps", {}).values()):
        _require(
            column in known,
            name,
            "ttl/timestamps",
            ERR_UNKNOWN_COLUMN.format(column=column, columns=listing),
        )
    changed = rule.get("changed-at-column")
    if changed:
        _require(
            changed in known,
            name,
            "changed-at-column",
            ERR_UNKNOWN_COLUMN.format(column=changed, columns=listing),
        )
    declared = {**source.column_types(schema=schema, table=table, query=query), **rule.get("column-types", {})}
    read = [column for column in columns if column not in exclude or column in primary]
    refused = [
        ERR_TYPE_REFUSED.format(column=column, type=declared[column])
        for column in read
        if column in declared and type_family(declared[column]) is None
    ]
    _require(not refused, name, "object-locator" if table else "source-query", "; ".join(refused))
    key_types = dict(rule.get("key-types", {}))
    for key_name in (partition, sort):
        if key_name and key_name not in key_types:
            key_types[key_name] = _key_type(key_name, attributes, declared)
    for attribute in attributes:
        if attribute.template and "hmac_sha256" in attribute.template.source and not settings.LIZZY_MAPPING_HMAC_KEY:
            raise MappingError(name, attribute.target, "hmac_sha256 needs LIZZY_MAPPING_HMAC_KEY, which is not set")
    target = target_name(rule["target-table-name"])
    problem = f"{target!r} is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, '_', '-', '.')" + (
        ": add an object-mapping rule with a target-table-name for this table" if default else ""
    )
    _require(_TABLE_NAME.fullmatch(target) is not None, name, "target-table-name", problem)
    return EntityMapping(
        rule=name,
        schema=schema,
        table=table,
        query=query,
        action=rule["rule-action"],
        target_table=target,
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
        declared_types=declared,
        filters=filters,
        collisions=rule.get("key-collisions", "error"),
        key_columns=key_columns,
    )


def _key_type(key_name: str, attributes: list[AttributeMapping], declared: dict[str, str]) -> str:
    by_family = {"integer": "N", "decimal": "N", "float": "N", "binary": "B"}
    for attribute in attributes:
        if attribute.target == key_name:
            if attribute.sub_type == "number":
                return "N"
            if attribute.sub_type == "native" and attribute.template and attribute.template.single:
                column = next(iter(attribute.template.columns()), None)
                return by_family.get(type_family(declared.get(column, "")) or "", "S") if column else "S"
            return "S"
    return by_family.get(type_family(declared.get(key_name, "")) or "", "S")


def table_specs(*, mapping: TableMapping, entities: list[EntityMapping]) -> list[TableSpec]:
    """The DynamoDB tables a mapping writes: keys from its rules, GSIs and TTL from ``tables``."""
    specs: dict[str, TableSpec] = {}
    owners: dict[str, EntityMapping] = {}
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
            first = owners[entity.target_table]
            if not entity.attributes and not first.attributes and not entity.entity_type:
                # Two source tables copied column for column into one table: their keys would overwrite.
                raise MappingError(
                    entity.rule,
                    "target-table-name",
                    ERR_TABLE_TWICE.format(table=entity.target_table, first=first.name, second=entity.name),
                )
            continue
        owners[entity.target_table] = entity
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
