"""Validation: does the target hold every selected source row, exactly? Three checks, two of them blind to the mapping.

1. **Expected vs found** (as before): the target is read with a parallel Scan (Segment/TotalSegments) into a
   map key → hash of the items of the mapped entity types (about 100 bytes per item); the source is
   streamed through the mapping: a key not in the map is *missing*, a hash that differs is *different* (a
   sample gets field-level diffs), what is left in the map at the end is *extra*. This check shares the
   transform's blind spots (a mapping bug writes and expects the same wrong item), so two more follow.
2. **Count reconciliation** per entity: rows the source selects (a ``COUNT(*)`` with the DMS filters, not
   the paging nor the mapping) against the distinct target items that entity owns (its ``entity_type``, or
   the whole table when one entity writes it). Two rows collapsed onto one key, a filter ignored, a table
   dropped: the counts differ, and the report says by how much.
3. **Type contract** from the source schema: each column's declared type decides the DynamoDB type and the
   exact value its attribute must have (integer/numeric → N with identical digits, boolean → BOOL, bytea →
   B, timestamptz → the documented ``...ffffffZ`` string, NULL → absent), checked on the item read back
   (identical, by its SHA-256, to the one checked) with rules written here, not the transform's code.

Items whose ``ttl`` is in the past count as absent on both sides: DynamoDB deletes them lazily (days
later), so their presence or absence says nothing about the migration. Quick mode compares keys and
counts only; it is labelled quick everywhere and never satisfies the cutover guard.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from django.utils import timezone

from lizzy.dynamodb import dynamodb_get_item, dynamodb_parallel_scan
from migration_app.models import MigrationPlan, ValidationMode, ValidationReport
from migration_app.services.canonical import canonical_text, item_hash, item_to_json, key_text
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.services.plans import PlanContext, plan_context
from migration_app.services.types import type_family
from migration_app.sources.base import ROW_ERROR

SAMPLE_SIZE = 10
SCAN_SEGMENTS = 4
STAMP_ATTRIBUTES = ("entity_type",)

ERR_CONTRACT_TYPE = "column {column} ({declared}) must be {expected} in DynamoDB, found {found}"
ERR_CONTRACT_VALUE = "column {column} ({declared}): source {source!r} but DynamoDB holds {found!r}"
ERR_CONTRACT_NULL = "column {column} is NULL in the source but present in DynamoDB ({found!r})"
ERR_CONTRACT_ABSENT = "column {column} is {source!r} in the source but absent in DynamoDB"
ERR_ROW_UNMAPPABLE = "row {key}: {problem}"


def _expired(item: dict[str, Any], ttl_attribute: str | None, now: int) -> bool:
    if not ttl_attribute:
        return False
    value = item.get(ttl_attribute)
    return isinstance(value, int) and value < now


def _field_diff(expected: dict[str, Any], actual: dict[str, Any] | None) -> list[dict[str, Any]]:
    actual = actual or {}
    diffs = []
    for name in sorted(set(expected) | set(actual)):
        left = item_to_json({name: expected[name]})[name] if name in expected else None
        right = item_to_json({name: actual[name]})[name] if name in actual else None
        if left != right:
            diffs.append({"field": name, "expected": left, "actual": right})
    return diffs


# --- the type contract: source value + declared type → what DynamoDB must hold --------------------------


def _dynamodb_type(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, (int, Decimal)):
        return "N"
    if isinstance(value, str):
        return "S"
    if isinstance(value, bytes):
        return "B"
    if isinstance(value, dict):
        return "M"
    if isinstance(value, list):
        return "L"
    return type(value).__name__


def _utc_text(value: dt.datetime) -> str:
    moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expected_scalar(family: str, source: Any) -> tuple[str, Any] | None:
    """(DynamoDB type, value) the contract requires for a non-NULL source value; None: no contract."""
    if family == "integer" and isinstance(source, int) and not isinstance(source, bool):
        return "N", Decimal(source)
    if family == "decimal" and isinstance(source, (Decimal, int)):
        return "N", Decimal(source)
    if family == "float" and isinstance(source, (float, int)):
        return "N", Decimal(repr(float(source)))
    if family == "boolean":
        return "BOOL", bool(source)
    if family == "binary" and isinstance(source, (bytes, memoryview)):
        return "B", bytes(source)
    if family in ("text", "interval") and isinstance(source, str):
        return "S", source
    if family == "uuid":
        return "S", str(source)
    if family == "timestamp" and isinstance(source, dt.datetime):
        return "S", _utc_text(source)
    if family == "date" and isinstance(source, dt.date) and not isinstance(source, dt.datetime):
        return "S", source.isoformat()
    return None


def _contract_problem(column: str, declared: str, source: Any, found: Any, present: bool) -> str | None:
    family = type_family(declared)
    if family in (None, "any", "time", "json", "array"):
        if (
            family == "array"
            and isinstance(source, list)
            and present
            and (not isinstance(found, list) or len(found) != len(source))
        ):
            return ERR_CONTRACT_TYPE.format(column=column, declared=declared, expected="L", found=_dynamodb_type(found))
        return None
    if not present:
        return ERR_CONTRACT_ABSENT.format(column=column, source=source)
    expected = _expected_scalar(family, source)
    if expected is None:
        return None
    kind, value = expected
    found_kind = _dynamodb_type(found)
    if found_kind != kind:
        return ERR_CONTRACT_TYPE.format(column=column, declared=declared, expected=kind, found=found_kind)
    same = Decimal(found) == value if kind == "N" else found == value  # Decimal equality is exact: no context
    if not same:
        shown = base64.b64encode(found).decode() if isinstance(found, bytes) else found
        return ERR_CONTRACT_VALUE.format(column=column, declared=declared, source=str(source), found=shown)
    return None


def contract_violations(entity: EntityMapping, row: dict[str, Any], item: dict[str, Any]) -> list[str]:
    """What in ``item`` breaks the source schema's contract for ``row`` (empty: nothing)."""
    problems = []
    container = item if entity.action == "map-record-to-record" else item.get(entity.document_attribute, {})
    for column in entity.carried_columns():
        declared = entity.declared_types.get(column)
        if not declared:
            continue
        source = row.get(column)
        present = column in container
        found = container.get(column)
        if source is None:
            if present and not (entity.keep_nulls and found is None):
                problems.append(ERR_CONTRACT_NULL.format(column=column, found=found))
            continue
        problem = _contract_problem(column, declared, source, found, present)
        if problem:
            problems.append(problem)
    return problems


# --- the report ---------------------------------------------------------------------------------------


def plan_validate(
    *, plan: MigrationPlan, mode: str = "full", sample_size: int = SAMPLE_SIZE, total_segments: int = SCAN_SEGMENTS
) -> ValidationReport:
    """Compare source and target; the report's ``clean`` is False on any mismatch."""
    with plan_context(plan=plan) as context:
        return _validate(context, mode=mode, sample_size=sample_size, total_segments=total_segments)


def _groups(context: PlanContext) -> dict[tuple[str, str | None], list[EntityMapping]]:
    """Which entities own which target items: by entity_type where every rule of a table stamps one."""
    groups: dict[tuple[str, str | None], list[EntityMapping]] = {}
    for table in dict.fromkeys(entity.target_table for entity in context.entities):
        entities = [entity for entity in context.entities if entity.target_table == table]
        if all(entity.entity_type for entity in entities):
            for entity in entities:
                groups.setdefault((table, entity.entity_type), []).append(entity)
        else:
            groups[(table, None)] = entities
    return groups


def _validate(context: PlanContext, *, mode: str, sample_size: int, total_segments: int) -> ValidationReport:
    full = mode == ValidationMode.FULL
    now = int(time.time())
    report = ValidationReport(plan=context.plan, mode=mode, created_at=timezone.now())
    samples: dict[str, list[Any]] = {"missing": [], "extra": [], "different": [], "counts": [], "contract": []}
    ttl_of = {spec.base_name: spec.ttl_attribute for spec in context.specs}
    keys_of = {
        spec.base_name: (spec.partition_key[0], *([spec.sort_key[0]] if spec.sort_key else []))
        for spec in context.specs
    }
    target: dict[tuple[str, str], bytes] = {}
    owned: Counter[tuple[str, str | None]] = Counter()
    lock = threading.Lock()
    groups = _groups(context)
    for table in dict.fromkeys(entity.target_table for entity in context.entities):
        types = {entity.entity_type for entity in context.entities if entity.target_table == table}
        # A table shared with other writers is validated only for the entity types this plan maps.
        typed = None not in types

        def consume(items: list[dict[str, Any]], table: str = table, typed: bool = typed, types=types) -> None:
            kept = {}
            counted: Counter[tuple[str, str | None]] = Counter()
            for item in items:
                if typed and item.get("entity_type") not in types:
                    continue
                if _expired(item, ttl_of[table], now):
                    with lock:
                        report.expired_ignored += 1
                    continue
                kept[(table, key_text(item, keys_of[table]))] = item_hash(item) if full else b""
                counted[(table, item.get("entity_type") if typed else None)] += 1
            with lock:
                target.update(kept)
                owned.update(counted)

        dynamodb_parallel_scan(table=table, total_segments=total_segments, consume=consume)
    report.found = len(target)
    expired_expected: Counter[str] = Counter()
    for entity in context.entities:
        relation = context.source.relation(entity)
        table = entity.target_table
        for rows in context.source.pages(relation, after=None, upper=None, page_size=1000):
            for row in rows:
                try:
                    if row.get(ROW_ERROR):
                        raise RowError(row[ROW_ERROR])  # the source could not read it: quarantined, not copied
                    expected = entity.transform(row)
                except RowError as exc:
                    report.missing += 1  # a row the mapping cannot turn into an item is not in the target
                    if len(samples["missing"]) < sample_size:
                        key = context.source.key_of(row, relation)
                        samples["missing"].append(
                            {"table": table, "key": ERR_ROW_UNMAPPABLE.format(key=key, problem=exc.message)}
                        )
                    continue
                if _expired(expected, ttl_of[table], now):
                    expired_expected[entity.name] += 1
                    continue
                report.expected += 1
                key = (table, key_text(expected, keys_of[table]))
                actual_hash = target.pop(key, None)
                if actual_hash is None:
                    report.missing += 1
                    if len(samples["missing"]) < sample_size:
                        samples["missing"].append({"table": table, "key": key[1]})
                    continue
                if not full:
                    continue
                if actual_hash != item_hash(expected):
                    report.different += 1
                    if len(samples["different"]) < sample_size:
                        actual = dynamodb_get_item(table=table, key=entity.key_of(expected), consistent=True)
                        samples["different"].append(
                            {"table": table, "key": key[1], "fields": _field_diff(expected, actual)}
                        )
                    continue
                # Same hash: ``expected`` is, byte for byte, the item read back from DynamoDB.
                problems = contract_violations(entity, row, expected)
                if problems:
                    report.contract_violations += 1
                    if len(samples["contract"]) < sample_size:
                        samples["contract"].append({"table": table, "key": key[1], "problems": problems})
    report.extra = len(target)
    for table, key in list(target)[:sample_size]:
        samples["extra"].append({"table": table, "key": key})
    counts = []
    for (table, entity_type), entities in groups.items():
        selected = sum(context.source.count(context.source.relation(entity)) for entity in entities)
        expired = sum(expired_expected[entity.name] for entity in entities)
        items = owned[(table, entity_type)]
        entry = {
            "table": table,
            "entity_type": entity_type,
            "entities": [entity.name for entity in entities],
            "source_rows": selected,
            "expired_rows": expired,
            "target_items": items,
        }
        counts.append(entry)
        if selected - expired != items:
            report.count_mismatches += 1
            samples["counts"].append({**entry, "difference": items - (selected - expired)})
    report.counts = counts
    report.samples = samples
    report.save()
    return report


def report_summary(report: ValidationReport) -> dict[str, Any]:
    return {
        **report.summary(),
        "expected": report.expected,
        "found": report.found,
        "expired_ignored": report.expired_ignored,
        "mode": report.mode,
        "quick": report.quick,
        "clean": report.clean,
        "counts": report.counts,
        "report": report.pk,
    }


__all__ = ["canonical_text", "contract_violations", "plan_validate", "report_summary"]
