"""Validation: does the target hold every selected source row, exactly? Three checks, two of them blind to the mapping.

1. **Expected vs found**, with bounded memory: the target is read with a parallel Scan (Segment/
   TotalSegments) and the source streamed through the mapping, both into per-bucket digests (count and sum
   of item hashes per bucket of the item-key hash; ``LIZZY_VALIDATION_BUCKETS``). Only buckets whose digests
   differ are read again, in rounds of at most ``LIZZY_VALIDATION_MAX_KEYS`` target items, into a map key →
   hash: a key not in the map is *missing*, a hash that differs is *different* (a sample gets field-level
   diffs), what is left in the map is *extra*. No whole-table map: a clean 100M-item table costs the
   buckets. This check shares the transform's blind spots (a mapping bug writes and expects the same wrong
   item), so two more follow.
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
import hashlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy.dynamodb import dynamodb_get_item, dynamodb_parallel_scan, dynamodb_scan
from migration_app.cdc.streams import cdc_stream_active
from migration_app.models import MigrationPlan, ValidationMode, ValidationReport, nul_escaped
from migration_app.services.canonical import canonical_text, item_hash, item_to_json, key_text
from migration_app.services.mapping import EntityMapping, RowError
from migration_app.services.plans import PlanContext, plan_context
from migration_app.services.scans import ERR_VALIDATION_UNREADABLE, SCAN_ERRORS, SCAN_PROFILE, scan_unreadable
from migration_app.services.types import type_family
from migration_app.services.validation_settle import (
    REASON_COUNTS_MOVED,
    Pending,
    Pendings,
    SettleOutcome,
    validation_settle,
)
from migration_app.sources.base import KEY, ROW_ERROR, key_shown

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


def _bucket_of(table: str, key: str, buckets: int) -> int:
    digest = hashlib.blake2b(f"{table}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _item_digest(item: dict[str, Any], key: str, full: bool) -> bytes:
    return item_hash(item) if full else hashlib.sha256(key.encode()).digest()


class _Digests:
    """Per bucket: item count and the sum of item hashes mod 2**256 (order-independent, like SetChecksum)."""

    MODULUS = 2**256

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sums = [0] * buckets

    def add(self, bucket: int, digest: bytes) -> None:
        self.counts[bucket] += 1
        self.sums[bucket] = (self.sums[bucket] + int.from_bytes(digest, "big")) % self.MODULUS

    @classmethod
    def from_lists(cls, counts: list[int], sums: list[str]) -> _Digests:
        digests = cls(len(counts))
        digests.counts = list(counts)
        digests.sums = [int(value, 16) for value in sums]
        return digests

    def merge(self, other: _Digests) -> None:
        for bucket, count in enumerate(other.counts):
            self.counts[bucket] += count
            self.sums[bucket] = (self.sums[bucket] + other.sums[bucket]) % self.MODULUS


def plan_validate(
    *, plan: MigrationPlan, mode: str = "full", sample_size: int = SAMPLE_SIZE, total_segments: int = SCAN_SEGMENTS
) -> ValidationReport:
    """Compare source and target in this process, one report: the target's Scan segments in threads while
    this thread reads the source's key ranges (the source connection stays in this thread)."""
    with plan_context(plan=plan) as context:
        specs = validation_parts(context=context, total_segments=total_segments)
        target_specs = [spec for spec in specs if spec["side"] == "target"]

        def run_target(spec: dict[str, Any]) -> dict[str, Any]:
            return validation_part_run(context=context, spec=spec, mode=mode, sample_size=sample_size)

        pool = ThreadPoolExecutor(max_workers=max(total_segments, 1), thread_name_prefix="validate")
        try:
            targets = [pool.submit(run_target, spec) for spec in target_specs]
            sources = []
            for spec in specs:
                if spec["side"] != "source":
                    continue
                _raise_first_failure(targets)  # a failed Scan ends the validation now, not after the source
                sources.append(validation_part_run(context=context, spec=spec, mode=mode, sample_size=sample_size))
            parts = [future.result() for future in targets] + sources
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on a failure, the segments not started never start
        return validation_merge(context=context, parts=parts, mode=mode, sample_size=sample_size)


def _raise_first_failure(futures: list[Future]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()


def validation_parts(*, context: PlanContext, total_segments: int = SCAN_SEGMENTS) -> list[dict[str, Any]]:
    """The independent parts of a validation (JSON, for Celery): each Scan segment of each target table, and
    each key range of each entity's source rows (cut by keyset probes, ``LIZZY_VALIDATION_RANGE_ROWS``)."""
    specs: list[dict[str, Any]] = []
    # the CDC worker's applied changes before any part reads: more at the merge, and the target moved meanwhile
    applied = {"cdc_changes": _cdc_changes(context.plan)}
    for table in dict.fromkeys(entity.target_table for entity in context.entities):
        specs += [
            {"side": "target", "table": table, "segment": segment, "total": total_segments, **applied}
            for segment in range(total_segments)
        ]
    for entity in context.entities:
        relation = context.source.relation(entity)
        lower = None
        while True:
            cut = context.source.key_after(relation, after=lower, rows=settings.LIZZY_VALIDATION_RANGE_ROWS)
            specs.append({"side": "source", "entity": entity.name, "lower": lower, "upper": cut, **applied})
            if cut is None:
                break
            lower = cut
    return specs


def _context_maps(context: PlanContext) -> tuple[dict, dict, dict]:
    ttl_of = {spec.base_name: spec.ttl_attribute for spec in context.specs}
    keys_of = {
        spec.base_name: (spec.partition_key[0], *([spec.sort_key[0]] if spec.sort_key else []))
        for spec in context.specs
    }
    tables = dict.fromkeys(entity.target_table for entity in context.entities)
    types_of = {table: {e.entity_type for e in context.entities if e.target_table == table} for table in tables}
    return ttl_of, keys_of, types_of


def _target_items(table: str, items: list[dict[str, Any]], maps: tuple, now: int, on_expired) -> list:
    """(key text, owner entity type, item) of the items of ``table`` this plan's validation looks at."""
    ttl_of, keys_of, types_of = maps
    types = types_of[table]
    typed = None not in types  # a table shared with other writers: only the entity types this plan maps
    kept = []
    for item in items:
        if typed and item.get("entity_type") not in types:
            continue
        if _expired(item, ttl_of[table], now):
            on_expired()
            continue
        kept.append((key_text(item, keys_of[table]), item.get("entity_type") if typed else None, item))
    return kept


def validation_part_run(
    *, context: PlanContext, spec: dict[str, Any], mode: str, sample_size: int = SAMPLE_SIZE
) -> dict[str, Any]:
    """Digests of one part (a Scan segment, or a source key range): memory is the buckets and one page."""
    full = mode == ValidationMode.FULL
    buckets = settings.LIZZY_VALIDATION_BUCKETS
    now = int(time.time())
    maps = _context_maps(context)
    ttl_of, keys_of, _types = maps
    digests = _Digests(buckets)
    # when this part began reading: the report is dated by its earliest part, so a write that ends while any part
    # reads is after the report and the cutover guard asks for a newer one
    began_at = timezone.now().isoformat()
    part: dict[str, Any] = {"side": spec["side"], "expired_ignored": 0, "expected": 0, "unmappable": 0}
    part["began_at"] = began_at
    part["cdc_changes"] = spec.get("cdc_changes")
    part["missing_samples"] = []
    part |= {"owned": Counter(), "contract_by_bucket": Counter(), "contract_samples": [], "expired_expected": {}}
    if spec["side"] == "target":
        table = spec["table"]

        def expired() -> None:
            part["expired_ignored"] += 1

        try:
            for page in _scan_pages(table, spec["segment"], spec["total"]):
                for key, owner, item in _target_items(table, page, maps, now, expired):
                    digests.add(_bucket_of(table, key, buckets), _item_digest(item, key, full))
                    part["owned"][f"{table}\x00{owner or ''}"] += 1
        except SCAN_ERRORS as exc:
            raise scan_unreadable(exc, table=table, template=ERR_VALIDATION_UNREADABLE) from exc
    else:
        entity = context.entity(spec["entity"])
        relation = context.source.relation(entity)
        table = entity.target_table
        expired_rows = 0
        with context.source.snapshot():  # one snapshot per part where the engine has one (PostgreSQL)
            for rows in context.source.pages(relation, after=spec["lower"], upper=spec["upper"], page_size=1000):
                for row in rows:
                    try:
                        if row.get(ROW_ERROR):
                            raise RowError(row[ROW_ERROR])  # the source could not read it: quarantined, not copied
                        expected = entity.transform(row)
                    except RowError as exc:
                        part["unmappable"] += 1  # a row the mapping cannot turn into an item is not in the target
                        if len(part["missing_samples"]) < sample_size:
                            # JSON: a NUL reads \\u0000, a backslash \\\\ (a key holding either stays apart)
                            source_key = json.dumps(key_shown(context.source.key_of(row, relation)), ensure_ascii=False)
                            part["missing_samples"].append(
                                {"table": table, "key": ERR_ROW_UNMAPPABLE.format(key=source_key, problem=exc.message)}
                            )
                        continue
                    if _expired(expected, ttl_of[table], now):
                        expired_rows += 1
                        continue
                    part["expected"] += 1
                    key = key_text(expected, keys_of[table])
                    bucket = _bucket_of(table, key, buckets)
                    digests.add(bucket, _item_digest(expected, key, full))
                    if full:
                        problems = contract_violations(entity, row, expected)  # counted where the bucket matches
                        if problems:
                            part["contract_by_bucket"][bucket] += 1
                            if len(part["contract_samples"]) < sample_size * 4:
                                part["contract_samples"].append(
                                    [bucket, {"table": table, "key": key, "problems": problems}]
                                )
        part["expired_expected"] = {entity.name: expired_rows}
    part["counts"] = digests.counts
    part["sums"] = [format(value, "x") for value in digests.sums]
    part["owned"] = dict(part["owned"])
    part["contract_by_bucket"] = {str(bucket): count for bucket, count in part["contract_by_bucket"].items()}
    return part


def _scan_pages(table: str, segment: int, total: int):
    start_key = None
    while True:
        page = dynamodb_scan(
            table=table,
            segment=segment if total > 1 else None,
            total_segments=total if total > 1 else None,
            start_key=start_key,
            profile=SCAN_PROFILE,
        )
        yield page.items
        if not page.last_key:
            return
        start_key = page.last_key


def validation_merge(
    *, context: PlanContext, parts: list[dict[str, Any]], mode: str, sample_size: int = SAMPLE_SIZE
) -> ValidationReport:
    """One report from the parts' digests; the buckets that differ are detailed in rounds of bounded size.

    Equal buckets hold exactly the expected items (up to a SHA-256 collision), so their contract checks
    stand. Differing buckets are read again, at most ``LIZZY_VALIDATION_MAX_KEYS`` target items at a time,
    into a key → hash map that names each missing, extra and different item.
    """
    full = mode == ValidationMode.FULL
    buckets = settings.LIZZY_VALIDATION_BUCKETS
    now = int(time.time())
    maps = _context_maps(context)
    ttl_of, keys_of, _types = maps
    began = [dt.datetime.fromisoformat(part["began_at"]) for part in parts if part.get("began_at")]
    report = ValidationReport(plan=context.plan, mode=mode, created_at=min(began, default=timezone.now()))
    samples: dict[str, list[Any]] = {"missing": [], "extra": [], "different": [], "counts": [], "contract": []}
    target, source = _Digests(buckets), _Digests(buckets)
    owned: Counter[str] = Counter()
    expired_expected: Counter[str] = Counter()
    contract_by_bucket: Counter[int] = Counter()
    contract_samples: list[tuple[int, dict[str, Any]]] = []
    for part in parts:
        (target if part["side"] == "target" else source).merge(_Digests.from_lists(part["counts"], part["sums"]))
        owned.update(part["owned"])
        report.expired_ignored += part["expired_ignored"]
        report.expected += part["expected"]
        report.missing += part["unmappable"]
        samples["missing"] += part["missing_samples"][: max(sample_size - len(samples["missing"]), 0)]
        expired_expected.update(part["expired_expected"])
        contract_by_bucket.update({int(bucket): count for bucket, count in part["contract_by_bucket"].items()})
        contract_samples += [(bucket, sample) for bucket, sample in part["contract_samples"]]
    report.found = sum(target.counts)
    differing = [
        bucket
        for bucket in range(buckets)
        if (source.counts[bucket], source.sums[bucket]) != (target.counts[bucket], target.sums[bucket])
    ]
    equal = set(range(buckets)) - set(differing)
    report.contract_violations += sum(count for bucket, count in contract_by_bucket.items() if bucket in equal)
    samples["contract"] = [sample for bucket, sample in contract_samples if bucket in equal][:sample_size]
    stream = cdc_stream_active(plan=context.plan) if context.plan.cdc else None
    pendings = Pendings(settings.LIZZY_VALIDATION_SETTLE_MAX_KEYS) if stream is not None else None
    detail = {"full": full, "now": now, "sample_size": sample_size, "pendings": pendings}
    _detail(context, report, samples, differing, target, maps, **detail)
    moving: set[str] = set()  # tables whose keys were in flight or unsettled
    if pendings is not None and (pendings.items or pendings.skipped):
        outcome = validation_settle(
            context=context,
            stream=stream,
            pendings=pendings.items,
            digest=lambda item, key: _item_digest(item, key, full),
            target_view=lambda table, items: [
                (key, item) for key, _owner, item in _target_items(table, items, maps, now, lambda: None)
            ],
            expired=lambda table, item: _expired(item, ttl_of[table], now),
        )
        moving = _settled(report, samples, outcome, pendings, stream, sample_size)
    if stream is not None:
        began_changes = [part["cdc_changes"] for part in parts if part.get("cdc_changes") is not None]
        stream.refresh_from_db(fields=["changes_applied"])
        if began_changes and stream.changes_applied > min(began_changes):
            moving |= set(context.plan.target_tables)  # the worker wrote to the target while it was read
    counts = []
    for (table, entity_type), entities in _groups(context).items():
        selected = sum(context.source.count(context.source.relation(entity)) for entity in entities)
        expired = sum(expired_expected[entity.name] for entity in entities)
        items = owned[f"{table}\x00{entity_type or ''}"]
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
            difference = {**entry, "difference": items - (selected - expired)}
            if table in moving:
                # counted at different moments of a moving source: neither a difference nor a match
                report.unsettled += 1
                samples.setdefault("unsettled", []).append({**difference, "reason": REASON_COUNTS_MOVED})
            else:
                report.count_mismatches += 1
                samples["counts"].append(difference)
    report.counts = counts
    report.samples = nul_escaped(samples)  # a value or key quoted with a NUL: jsonb holds none
    report.save()
    return report


def _settled(report, samples, outcome: SettleOutcome, pendings: Pendings, stream, sample_size: int) -> set[str]:
    """The settle step's verdicts into the report; returns the tables whose keys were in flight or unsettled.

    In-flight and unsettled keys leave the difference counts (and samples) the comparison put them in; a
    confirmed difference is counted as the last item read found it (a *missing* item that arrived different
    is *different*)."""
    followed = outcome.in_flight + [pending for pending, _reason in outcome.unsettled] + outcome.differences
    moved = {(pending.table, pending.key) for pending in followed}
    for pending in followed:
        setattr(report, pending.kind, getattr(report, pending.kind) - 1)
    for pending in outcome.differences:
        setattr(report, pending.final, getattr(report, pending.final) + 1)
    original = {
        (sample.get("table"), sample.get("key"), kind): sample
        for kind in ("missing", "different", "extra")
        for sample in samples[kind]
    }
    for kind in ("missing", "different", "extra"):
        kept = [sample for sample in samples[kind] if (sample.get("table"), sample.get("key")) not in moved]
        for pending in outcome.differences:
            if pending.final == kind:
                sample = original.get((pending.table, pending.key, kind)) or {
                    "table": pending.table,
                    "key": pending.key,
                }
                if kind == "different" and pending.expected is not None and len(kept) < sample_size:
                    # the field diffs as the settle step last saw them (the comparison's may be of an older state)
                    actual = dynamodb_get_item(table=pending.table, key=pending.item_key, consistent=True)
                    sample = {**sample, "fields": _field_diff(pending.expected, actual)}
                kept.append(sample if pending.kind == kind else {**sample, "was": pending.kind})
        samples[kind] = kept[:sample_size]
    report.in_flight += len(outcome.in_flight)
    report.unsettled += len(outcome.unsettled)
    samples["in_flight"] = [
        {"table": pending.table, "key": pending.key, "was": pending.kind} for pending in outcome.in_flight[:sample_size]
    ]
    samples["unsettled"] = [
        {"table": pending.table, "key": pending.key, "was": pending.kind, "reason": reason}
        for pending, reason in outcome.unsettled[:sample_size]
    ]
    samples["settle"] = [  # one entry: a list like every other sample kind
        {
            "stream": stream.slot_name,
            "keys": len(pendings.items),
            "over_limit": pendings.skipped,  # not followed (LIZZY_VALIDATION_SETTLE_MAX_KEYS): counted as named
            "rounds": outcome.rounds,
            "positions": outcome.positions,
            "in_flight": len(outcome.in_flight),
            "differences": len(outcome.differences),
            "unsettled": len(outcome.unsettled),
            "stalled": outcome.stalled,
        }
    ]
    return {pending.table for pending in outcome.in_flight} | {pending.table for pending, _r in outcome.unsettled}


def _cdc_changes(plan: MigrationPlan) -> int | None:
    """Changes the plan's CDC worker has applied so far (None: no active stream): a validation during which
    it grows read a target that moved."""
    if not plan.cdc:
        return None
    stream = cdc_stream_active(plan=plan)
    return None if stream is None else stream.changes_applied


def _detail(context, report, samples, differing, target, maps, *, full, now, sample_size, pendings=None) -> None:
    """Missing, different and extra items of the differing buckets, in rounds of bounded size.

    ``pendings`` (for a plan whose CDC stream is active) collects the keys named, up to
    ``LIZZY_VALIDATION_SETTLE_MAX_KEYS``, for the settle step; a key two source rows share is not collected
    (a collision is a difference, whatever is in flight)."""

    def collect(pending: Pending) -> None:
        if pendings is not None:
            pendings.add(pending)

    ttl_of, keys_of, _types = maps
    buckets = settings.LIZZY_VALIDATION_BUCKETS
    limit = settings.LIZZY_VALIDATION_MAX_KEYS
    tables = list(dict.fromkeys(entity.target_table for entity in context.entities))
    rounds: list[set[int]] = []
    for bucket in differing:
        if not rounds or sum(target.counts[b] for b in rounds[-1]) + target.counts[bucket] > limit:
            rounds.append(set())
        rounds[-1].add(bucket)
    lock = threading.Lock()
    for chosen in rounds:
        found: dict[tuple[str, str], bytes] = {}
        matched: set[tuple[str, str]] = set()
        for table in tables:

            def keep(items, table=table, chosen=chosen, found=found) -> None:
                kept = {
                    (table, key): _item_digest(item, key, full)
                    for key, _owner, item in _target_items(table, items, maps, now, lambda: None)
                    if _bucket_of(table, key, buckets) in chosen
                }
                with lock:
                    found.update(kept)

            try:
                dynamodb_parallel_scan(table=table, total_segments=SCAN_SEGMENTS, consume=keep, profile=SCAN_PROFILE)
            except SCAN_ERRORS as exc:
                raise scan_unreadable(exc, table=table, template=ERR_VALIDATION_UNREADABLE) from exc
        with context.source.snapshot():  # one snapshot per round: a row moved mid-read is not read twice
            for entity in context.entities:
                relation = context.source.relation(entity)
                table = entity.target_table
                for rows in context.source.pages(relation, after=None, upper=None, page_size=1000):
                    for row in rows:
                        try:
                            expected = entity.transform(row)
                        except RowError:
                            continue  # counted as missing by its part
                        key = key_text(expected, keys_of[table])
                        if _expired(expected, ttl_of[table], now) or _bucket_of(table, key, buckets) not in chosen:
                            continue
                        actual_hash = found.pop((table, key), None)
                        if actual_hash is None:
                            report.missing += 1
                            if len(samples["missing"]) < sample_size:
                                samples["missing"].append({"table": table, "key": key})
                            if (table, key) not in matched:
                                collect(Pending(table, key, "missing", entity.name, row[KEY]))
                            continue
                        if pendings is not None:
                            matched.add((table, key))
                        if not full:
                            continue
                        if actual_hash != item_hash(expected):
                            report.different += 1
                            collect(Pending(table, key, "different", entity.name, row[KEY]))
                            if len(samples["different"]) < sample_size:
                                actual = dynamodb_get_item(table=table, key=entity.key_of(expected), consistent=True)
                                samples["different"].append(
                                    {"table": table, "key": key, "fields": _field_diff(expected, actual)}
                                )
                            continue
                        problems = contract_violations(entity, row, expected)
                        if problems:
                            report.contract_violations += 1
                            if len(samples["contract"]) < sample_size:
                                samples["contract"].append({"table": table, "key": key, "problems": problems})
        report.extra += len(found)
        for table, key in list(found)[: max(sample_size - len(samples["extra"]), 0)]:
            samples["extra"].append({"table": table, "key": key})
        for table, key in found:
            collect(Pending(table, key, "extra"))


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
