"""Ops console data: consumed capacity per table per day, editable prices, and the console's permissions."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class OpsConsole(models.Model):
    """No table: it only carries the console's permissions (live sessions are in DynamoDB, not the ORM)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_ops_dashboard", "Can view the ops dashboard"),
            ("view_live_sessions", "Can view live SMS sessions"),
            ("manage_live_sessions", "Can expire, reset and delete live SMS sessions"),
            # Not a view_* permission, so the viewer role does not get it (lizzy/roles.py).
            ("read_customer_messages", "Can read what customers wrote by SMS"),
        ]

    def __str__(self) -> str:
        return "Ops console"


class ApiAccess(models.Model):
    """No table: the REST API's permissions, granted per token owner (docs/OPERATIONS.md, "Permission model").

    A token only signs a user in; what the token may do comes from these permissions (through a group such
    as ``api_client``). A CRM integration gets read and write of sessions and CRM reads, not deletion.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("api_sessions_read", "API: read and list live sessions"),
            ("api_sessions_write", "API: create and replace live sessions"),
            ("api_sessions_delete", "API: delete live sessions"),
            ("api_crm_read", "API: read CRM customers, equipment, parts, orders and service requests"),
            ("api_events_read", "API: stream session change events"),
            ("api_migrations_read", "API: read migration plans"),
            ("api_migrations_validate", "API: queue migration validations"),
        ]

    def __str__(self) -> str:
        return "API access"


class CapacityUsage(models.Model):
    """Consumed capacity units reported by DynamoDB (ReturnConsumedCapacity), summed per table and UTC day."""

    table = models.CharField(max_length=255)
    day = models.DateField()
    read_units = models.FloatField(default=0)
    write_units = models.FloatField(default=0)
    calls = models.PositiveBigIntegerField(default=0)
    # When the day's first units reached the ledger (the projection note counts hours from it, not midnight);
    # NULL on rows written before it was kept.
    first_units_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-day", "table")
        constraints = [models.UniqueConstraint(fields=("table", "day"), name="capacity_usage_table_day")]
        verbose_name_plural = "capacity usage"

    def __str__(self) -> str:
        return f"{self.table} {self.day}"


class DynamoDBPricing(models.Model):
    """On-demand prices in USD. The active row prices the projections; the others are for comparison."""

    name = models.CharField(max_length=100, unique=True)
    write_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    read_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    storage_per_gb_month = models.DecimalField(max_digits=10, decimal_places=4)
    is_active = models.BooleanField(default=False, help_text="The prices the dashboard projects with.")
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("-is_active", "name")
        verbose_name = "DynamoDB pricing"
        verbose_name_plural = "DynamoDB pricing"

    def __str__(self) -> str:
        return self.name


class CacheNodePrice(models.Model):
    """An ElastiCache node size and its monthly price; the one marked ``replaced`` is what DynamoDB replaces."""

    node_type = models.CharField(max_length=64, unique=True)
    memory_gb = models.DecimalField(max_digits=8, decimal_places=2)
    monthly_usd = models.DecimalField(max_digits=10, decimal_places=2)
    replaced = models.BooleanField(default=False, help_text="The node this deployment ran before DynamoDB.")
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("monthly_usd",)
        verbose_name = "ElastiCache node price"

    def __str__(self) -> str:
        return self.node_type


DEFAULT_PRICES = (
    # (name, write, read, storage, active, source)
    (
        "On-demand list price (us-east-1, since Nov 2024)",
        Decimal("0.625"),
        Decimal("0.125"),
        Decimal("0.25"),
        True,
        "AWS price cut of November 2024",
    ),
    (
        "Older list price (before the November 2024 cut)",
        Decimal("1.25"),
        Decimal("0.25"),
        Decimal("0.25"),
        False,
        "the list price before AWS's November 2024 cut",
    ),
)
DEFAULT_CACHE_NODES = (
    # (node_type, memory_gb, monthly_usd, replaced, source)
    ("cache.t3.micro", Decimal("0.5"), Decimal("12"), False, ""),
    ("cache.t3.small", Decimal("1.37"), Decimal("25"), True, "break-even basis"),
    ("cache.t4g.micro", Decimal("0.5"), Decimal("12"), False, ""),
    ("cache.t4g.small", Decimal("1.5"), Decimal("24"), False, "recommended size"),
    ("cache.t4g.medium", Decimal("3.1"), Decimal("48"), False, ""),
    ("cache.m6g.large", Decimal("6.4"), Decimal("96"), False, ""),
)
