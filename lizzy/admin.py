"""Admin for the cost data (capacity per table and day, editable prices) and the cost comparison page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from lizzy.admin_panels import GIGABYTE, stored_bytes
from lizzy.cost import (
    SEED_READS_PER_SESSION,
    SEED_STORAGE_GB_PER_SESSION,
    SEED_WRITES_PER_SESSION,
    Prices,
    active_prices,
    break_even_sessions,
    capacity_flush,
    capacity_flush_interval,
    capacity_summary,
    cost_monthly,
    cost_per_session,
)
from lizzy.models import CacheNodePrice, CapacityUsage, DynamoDBPricing

COST_PERMISSION = "lizzy.view_capacityusage"


@admin.register(CapacityUsage)
class CapacityUsageAdmin(admin.ModelAdmin):
    list_display = ("day", "table", "read_units_display", "write_units_display", "calls")
    list_filter = ("table", "day")
    date_hierarchy = "day"
    readonly_fields = ("table", "day", "read_units", "write_units", "calls", "updated_at")

    @admin.display(description="read units", ordering="read_units")
    def read_units_display(self, obj: CapacityUsage) -> str:
        return format_html("{}", f"{obj.read_units:,.1f}")

    @admin.display(description="write units", ordering="write_units")
    def write_units_display(self, obj: CapacityUsage) -> str:
        return format_html("{}", f"{obj.write_units:,.1f}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # DynamoDB reports these; nobody types them in

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DynamoDBPricing)
class DynamoDBPricingAdmin(admin.ModelAdmin):
    list_display = ("name", "write_per_million", "read_per_million", "storage_per_gb_month", "is_active", "source")
    list_editable = ("is_active",)


@admin.register(CacheNodePrice)
class CacheNodePriceAdmin(admin.ModelAdmin):
    list_display = ("node_type", "memory_gb", "monthly_usd", "replaced", "break_even_display", "source")
    list_editable = ("monthly_usd", "replaced")

    @admin.display(description="break-even sessions/month (active prices)")
    def break_even_display(self, obj: CacheNodePrice) -> str:
        _name, prices = active_prices()
        return format_html("{}", f"{break_even_sessions(node_monthly_usd=obj.monthly_usd, prices=prices):,}")


def _prices(row: DynamoDBPricing) -> Prices:
    return Prices(row.write_per_million, row.read_per_million, row.storage_per_gb_month)


def cost_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    if not request.user.has_perm(COST_PERMISSION):
        raise PermissionDenied
    if request.method == "POST":
        if not request.user.has_perm("lizzy.change_dynamodbpricing"):
            raise PermissionDenied
        rows = capacity_flush()
        messages.success(request, f"Flushed this process's consumed capacity ({rows} table-day row(s) updated).")
        return HttpResponseRedirect(reverse("admin:lizzy_cost"))
    summary = capacity_summary(storage_gb=stored_bytes() / GIGABYTE)
    nodes = list(CacheNodePrice.objects.all())
    replaced = next((node for node in nodes if node.replaced), nodes[0] if nodes else None)
    comparisons = []
    for row in DynamoDBPricing.objects.all():
        prices = _prices(row)
        seed_example = cost_monthly(writes=3000, reads=2000, storage_gb=Decimal("0.5"), prices=prices)
        projected = cost_monthly(
            writes=summary.projected_writes, reads=summary.projected_reads, storage_gb=summary.storage_gb, prices=prices
        )
        comparisons.append(
            {
                "row": row,
                "seed_example": seed_example,
                "projected": projected,
                "per_session": cost_per_session(prices=prices),
                "break_even": break_even_sessions(node_monthly_usd=replaced.monthly_usd, prices=prices)
                if replaced
                else None,
            }
        )
    context = {
        **site.each_context(request),
        "title": "DynamoDB cost",
        "summary": summary,
        "comparisons": comparisons,
        "nodes": nodes,
        "replaced": replaced,
        "assumptions": {
            "writes": SEED_WRITES_PER_SESSION,
            "reads": SEED_READS_PER_SESSION,
            "storage_gb": SEED_STORAGE_GB_PER_SESSION,
        },
        "can_flush": request.user.has_perm("lizzy.change_dynamodbpricing"),
        # moto (make run's endpoint) answers TableSizeBytes 0 for every table: say so rather than "0.0000 GB"
        "storage_reported": not django_settings.AWS_ENDPOINT_URL_DYNAMODB,
        "flush_seconds": max(capacity_flush_interval(), 0),
    }
    return TemplateResponse(request, "admin/lizzy/cost.html", context)


def _cost_urls(site: Any) -> list[Any]:
    return [path("ops/cost/", site.admin_view(lambda request: cost_view(request, site)), name="lizzy_cost")]


if hasattr(admin.site, "add_urls"):
    admin.site.add_urls(_cost_urls)
    admin.site.add_ops_link("DynamoDB cost", "lizzy_cost", permission=COST_PERMISSION, order=20)
