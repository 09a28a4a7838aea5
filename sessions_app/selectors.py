"""Reads of session state: sessions (through the store of the current mode), the stores' own figures
(hit rate, breaker, latencies, shadow reads, write-behind backlog), the hot tier, the CRM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import dynamodb_scan
from lizzy.phone import mask_phone, phone_from_ref, phone_ref
from lizzy.redis import (
    SESSION_KEY,
    json_loads,
    key,
    phone_from_session_key,
    redis_session_entries,
    redis_session_keys,
)
from lizzy.tables import SESSIONS
from sessions_app.models import (
    Customer,
    Equipment,
    EquipmentModel,
    Part,
    PartsOrder,
    ServiceRequest,
    SmsContact,
    Transaction,
    UnitType,
)
from sessions_app.services.store.base import Session
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.factory import get_session_store
from sessions_app.services.store.parallel import shadow_read_stats
from sessions_app.services.store.timing import latency_samples
from sessions_app.services.store.write_behind import flush_backlog, flush_last
from sessions_app.services.store_modes import store_mode_current

__all__ = ["flush_backlog", "flush_last", "shadow_read_stats"]  # the stores' own figures, read here too

SESSION_CACHE_SAMPLE = "lizzy_session_cache_requests_total"


def session_get(*, phone: str) -> Session | None:
    """The live session for an E.164 phone, or None (absent or past its ``ttl``)."""
    return get_session_store().load(phone)


def session_list(
    *,
    node: str | None = None,
    known_customer: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
    table: str | None = None,
) -> tuple[list[Session], str | None]:
    """Live sessions (optionally at one node, with or without a customer), one page.

    The cursor is an opaque LastEvaluatedKey. A Scan with a filter: fine for an ops listing, never on
    the request path of the webhook.
    """
    table = table or SESSIONS.name
    names = {"#ttl": "ttl"}
    values: dict[str, Any] = {":now": int(timezone.now().timestamp())}
    expression = "#ttl > :now"
    if node:
        names["#node"] = "currentNode"
        values[":node"] = node
        expression += " AND #node = :node"
    if known_customer is not None:
        names["#customer"] = "customerId"
        expression += f" AND {'attribute_exists' if known_customer else 'attribute_not_exists'}(#customer)"
    # The cursor is the last phone returned, sealed (phone_ref): a next link must not carry the number.
    start_key = {"phone": phone_from_ref(cursor)} if cursor else None
    found: list[Session] = []
    while True:
        page = dynamodb_scan(
            table=table,
            filter_expression=expression,
            names=names,
            values=values,
            start_key=start_key,
            limit=max(limit, 100),
        )
        for item in page.items:
            found.append(Session.from_document(item))
            if len(found) == limit:
                # Resume after the last item we return, not after the page: nothing is skipped.
                more = page.last_key is not None or item is not page.items[-1]
                return found, phone_ref(item["phone"]) if more else None
        if not page.last_key:
            return found, None
        start_key = page.last_key


@dataclass
class StoreStats:
    mode: str
    hits: float
    misses: float
    hit_rate: float | None
    breaker: str
    latency: dict[str, dict[str, float | None]]


def session_store_stats() -> StoreStats:
    """Hit rate, breaker state and per-tier p50/p95 of this process (the admin and ops console show them)."""
    hits = metrics.sample_value(SESSION_CACHE_SAMPLE, {"result": "hit"})
    misses = metrics.sample_value(SESSION_CACHE_SAMPLE, {"result": "miss"})
    total = hits + misses
    return StoreStats(
        mode=store_mode_current(),
        hits=hits,
        misses=misses,
        hit_rate=(hits / total) if total else None,
        breaker=redis_breaker.state,
        latency=latency_samples.percentiles(),
    )


# --- Ops console reads (the admin's live sessions page and dashboard) ---------------------------

CUSTOMER_KNOWN = "known"
CUSTOMER_UNKNOWN = "unknown"


def session_search(
    *, node: str | None = None, customer: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[Session], str | None]:
    """One page of live sessions, optionally at one node and with a known/unknown customer.

    A filtered Scan that resumes from an opaque cursor (a LastEvaluatedKey): an ops listing, never
    the webhook's request path.
    """
    known = {CUSTOMER_KNOWN: True, CUSTOMER_UNKNOWN: False}.get(customer or "")
    return session_list(node=node, known_customer=known, limit=limit, cursor=cursor)


def session_counts_by_node() -> dict[str, int]:
    """Live sessions per ``currentNode``: a full Scan, so callers cache the answer briefly."""
    counts: dict[str, int] = {}
    now = int(timezone.now().timestamp())
    start_key = None
    while True:
        page = dynamodb_scan(table=SESSIONS.name, start_key=start_key)
        for item in page.items:
            if item.get("ttl") is not None and int(item["ttl"]) <= now:
                continue  # expired but not yet deleted by DynamoDB's TTL sweeper
            node = str(item.get("currentNode") or "MAIN_MENU")
            counts[node] = counts.get(node, 0) + 1
        if not page.last_key:
            return dict(sorted(counts.items(), key=lambda entry: (-entry[1], entry[0])))
        start_key = page.last_key


# --- CRM reads (issue 3): the workflow and the CRM REST endpoints ------------------------------------

PROFILE_EQUIPMENT_LIMIT = 50  # an SMS list longer than this is unusable anyway; keeps the session item small
RECENT_TRANSACTIONS_LIMIT = 20


def customer_get_by_phone(*, phone: str) -> Customer | None:
    return Customer.objects.filter(phone=phone).first()


def customer_profile(*, customer_id: str) -> dict[str, Any] | None:
    """The profile the workflow caches in ``cachedData.customerProfile`` (JSON-ready, no ORM objects)."""
    customer = Customer.objects.filter(customer_id=customer_id).first()
    if customer is None:
        return None
    equipment = Equipment.objects.filter(owner=customer).order_by("equipment_id")[:PROFILE_EQUIPMENT_LIMIT]
    return {
        "customerId": customer.customer_id,
        "name": customer.name,
        "equipment": [
            {
                "equipmentId": e.equipment_id,
                "name": e.name,
                "serialNumber": e.serial_number,
                "unitType": e.unit_type,
                "model": e.model,
            }
            for e in equipment
        ],
    }


def customer_recent_transactions(*, customer_id: str, limit: int = RECENT_TRANSACTIONS_LIMIT) -> list[dict[str, Any]]:
    rows = Transaction.objects.filter(customer__customer_id=customer_id).order_by("-date", "-id")[:limit]
    return [{"date": t.date.date().isoformat(), "amount": str(t.amount), "description": t.description} for t in rows]


def part_unit_types() -> list[str]:
    """Unit types that have parts, in the order of ``UnitType``."""
    present = set(Part.objects.values_list("unit_type", flat=True).distinct())
    return [value for value in UnitType.values if value in present]


def equipment_models_for_unit_type(*, unit_type: str) -> list[str]:
    return list(EquipmentModel.objects.filter(unit_type=unit_type).order_by("name").values_list("name", flat=True))


def parts_for(*, unit_type: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """Parts matching the SMS filters, as plain dicts (the workflow pages them)."""
    return [
        {"sku": p.sku, "name": p.name, "price": str(p.price), "stock": p.stock}
        for p in part_list(filters={"unitType": unit_type, "model": model})
    ]


def part_catalogue() -> dict[str, list[dict[str, Any]]]:
    """Every model and part as plain dicts, for matching an SMS's free text: three queries, whatever its size."""
    models = [
        {"name": name, "brand": brand, "unitType": unit_type}
        for name, brand, unit_type in EquipmentModel.objects.order_by("unit_type", "name").values_list(
            "name", "brand", "unit_type"
        )
    ]
    fits: dict[int, list[str]] = {}
    for part_id, model in Part.compatible_models.through.objects.values_list("part_id", "equipmentmodel__name"):
        fits.setdefault(part_id, []).append(model)
    parts = [
        {
            "sku": sku,
            "name": name,
            "unitType": unit_type,
            "price": str(price),
            "stock": stock,
            "models": fits.get(pk, []),
        }
        for pk, sku, name, unit_type, price, stock in Part.objects.order_by("sku").values_list(
            "pk", "sku", "name", "unit_type", "price", "stock"
        )
    ]
    return {"models": models, "parts": parts}


def part_get(*, sku: str) -> Part | None:
    return Part.objects.filter(sku=sku).first()


def customer_list(*, search: str | None = None) -> QuerySet[Customer]:
    queryset = Customer.objects.all()
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(customer_id__iexact=search))
    return queryset.order_by("customer_id")


def equipment_list(*, filters: dict[str, Any]) -> QuerySet[Equipment]:
    queryset = Equipment.objects.select_related("owner")
    if filters.get("unitType"):
        queryset = queryset.filter(unit_type=filters["unitType"])
    if filters.get("model"):
        queryset = queryset.filter(model__iexact=filters["model"])
    if filters.get("customerId"):
        queryset = queryset.filter(owner__customer_id=filters["customerId"])
    return queryset.order_by("equipment_id")


def part_list(*, filters: dict[str, Any]) -> QuerySet[Part]:
    queryset = Part.objects.all()
    if filters.get("unitType"):
        queryset = queryset.filter(unit_type=filters["unitType"])
    if filters.get("model"):
        queryset = queryset.filter(compatible_models__name__iexact=filters["model"])
    if filters.get("search"):
        term = filters["search"]
        queryset = queryset.filter(Q(name__icontains=term) | Q(sku__icontains=term))
    return queryset.distinct().order_by("sku")


def transaction_list(*, customer_id: str) -> QuerySet[Transaction]:
    return Transaction.objects.filter(customer__customer_id=customer_id).order_by("-date", "-id")


def parts_order_list(*, filters: dict[str, Any]) -> QuerySet[PartsOrder]:
    queryset = PartsOrder.objects.select_related("customer", "equipment")
    if filters.get("customerId"):
        queryset = queryset.filter(customer__customer_id=filters["customerId"])
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    return queryset.order_by("-created_at", "-id")


def service_request_list(*, filters: dict[str, Any]) -> QuerySet[ServiceRequest]:
    queryset = ServiceRequest.objects.select_related("customer", "equipment")
    if filters.get("customerId"):
        queryset = queryset.filter(customer__customer_id=filters["customerId"])
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    return queryset.order_by("-created_at", "-id")


def sms_contact_get(*, phone: str) -> SmsContact | None:
    return SmsContact.objects.filter(phone=phone).first()


# --- Hot tier entries (the ops console's cached entries page) ------------------------------------

HOT_TIER_SCAN_ROUNDS = 20  # SCAN calls per page at most: a sparse MATCH over a big keyspace stays bounded


@dataclass(frozen=True)
class HotTierEntry:
    phone: str
    key: str  # the Redis key with the phone masked, for display
    ttl_seconds: int | None  # None: no expiry (never set by this product)
    size_bytes: int
    last_write: str | None  # the session's lastActivity
    version: int | None
    dirty: bool  # write-behind writes not yet in DynamoDB


def hot_tier_entries(
    *, phone_prefix: str = "", cursor: int = 0, limit: int = 50
) -> tuple[list[HotTierEntry], int | None]:
    """One page of session keys in Redis (SCAN, never KEYS) with TTL, size, last write and dirty flag.

    Returns (entries, next cursor or None at the end). SCAN may return a key twice across pages; the
    page removes duplicates it sees itself.
    """
    phones: list[str] = []
    for _ in range(HOT_TIER_SCAN_ROUNDS):
        cursor, keys = redis_session_keys(phone_prefix=phone_prefix, cursor=cursor, count=max(limit, 100))
        phones.extend(p for p in (phone_from_session_key(k) for k in keys) if p not in phones)
        if cursor == 0 or len(phones) >= limit:
            break
    entries = []
    for phone, (value, pttl, dirty) in zip(phones, redis_session_entries(phones=phones), strict=True):
        if value is None:
            continue  # expired between SCAN and GET
        document = json_loads(value)
        entries.append(
            HotTierEntry(
                phone=phone,
                key=key(SESSION_KEY, phone=mask_phone(phone)),
                ttl_seconds=pttl // 1000 if pttl >= 0 else None,
                size_bytes=len(value.encode()),
                last_write=document.get("lastActivity"),
                version=document.get("version"),
                dirty=dirty,
            )
        )
    return entries, (cursor or None)
