"""Validation: every source row's expected item against the target, by key and canonical hash.

The target is read first with a parallel Scan (Segment/TotalSegments) into a map key → hash of the
items of the mapped entity types (about 100 bytes per item: the only state that grows with the row
count). The source is then streamed through the mapping: a key not in the map is *missing*, a hash
that differs is *different* (a sample gets field-level diffs), and what is left in the map at the end
is *extra*. Items whose ``ttl`` is in the past count as absent on both sides: DynamoDB deletes them
lazily (days later), so their presence or absence says nothing about the migration.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.utils import timezone

from lizzy.dynamodb import dynamodb_get_item, dynamodb_parallel_scan
from migration_app.models import MigrationPlan, ValidationReport
from migration_app.services.backfill import PlanContext, plan_context
from migration_app.services.canonical import canonical_text, item_hash, item_to_json, key_text

SAMPLE_SIZE = 10
SCAN_SEGMENTS = 4
STAMP_ATTRIBUTES = ("entity_type",)


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


def plan_validate(
    *, plan: MigrationPlan, mode: str = "full", sample_size: int = SAMPLE_SIZE, total_segments: int = SCAN_SEGMENTS
) -> ValidationReport:
    """Compare source and target; the report's ``clean`` is False on any mismatch."""
    with plan_context(plan=plan) as context:
        return _validate(context, mode=mode, sample_size=sample_size, total_segments=total_segments)


def _validate(context: PlanContext, *, mode: str, sample_size: int, total_segments: int) -> ValidationReport:
    now = int(time.time())
    report = ValidationReport(plan=context.plan, mode=mode, created_at=timezone.now())
    samples: dict[str, list[Any]] = {"missing": [], "extra": [], "different": []}
    ttl_of = {spec.base_name: spec.ttl_attribute for spec in context.specs}
    keys_of = {
        spec.base_name: (spec.partition_key[0], *([spec.sort_key[0]] if spec.sort_key else []))
        for spec in context.specs
    }
    target: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()
    for table in dict.fromkeys(entity.target_table for entity in context.entities):
        entities = [entity for entity in context.entities if entity.target_table == table]
        types = {entity.entity_type for entity in entities}
        # A table shared with other writers is validated only for the entity types this plan maps.
        typed = None not in types

        def consume(items: list[dict[str, Any]], table: str = table, typed: bool = typed, types=types) -> None:
            kept = {}
            for item in items:
                if typed and item.get("entity_type") not in types:
                    continue
                if _expired(item, ttl_of[table], now):
                    with lock:
                        report.expired_ignored += 1
                    continue
                kept[(table, key_text(item, keys_of[table]))] = item_hash(item) if mode == "full" else b""
            with lock:
                target.update(kept)

        dynamodb_parallel_scan(table=table, total_segments=total_segments, consume=consume)
    report.found = len(target)
    for entity in context.entities:
        relation = context.source.relation(entity)
        table = entity.target_table
        for rows in context.source.pages(relation, after=None, upper=None, page_size=1000):
            for row in rows:
                expected = entity.transform(row)
                if _expired(expected, ttl_of[table], now):
                    continue
                report.expected += 1
                key = (table, key_text(expected, keys_of[table]))
                actual_hash = target.pop(key, None)
                if actual_hash is None:
                    report.missing += 1
                    if len(samples["missing"]) < sample_size:
                        samples["missing"].append({"table": table, "key": key[1]})
                elif mode == "full" and actual_hash != item_hash(expected):
                    report.different += 1
                    if len(samples["different"]) < sample_size:
                        actual = dynamodb_get_item(table=table, key=entity.key_of(expected), consistent=True)
                        samples["different"].append(
                            {"table": table, "key": key[1], "fields": _field_diff(expected, actual)}
                        )
    report.extra = len(target)
    for table, key in list(target)[:sample_size]:
        samples["extra"].append({"table": table, "key": key})
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
        "clean": report.clean,
        "report": report.pk,
    }


__all__ = ["canonical_text", "plan_validate", "report_summary"]
