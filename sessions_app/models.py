"""CRM data the SMS workflow reads and writes (relational, through the ORM).

Sessions themselves are not here: they live in DynamoDB (``services/sessions.py``).
"""

from __future__ import annotations

import secrets

from django.db import models

# Crockford's base32: digits and capitals without I, L, O and U, so a reference read out on the phone
# cannot be misheard as another (0/O, 1/I/L).
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 8  # 40 bits; a clash with one of the same customer is drawn again


def reference_generate(prefix: str) -> str:
    """A reference a customer can quote: ``P-7K3M-9QXD`` (parts order), ``S-…`` (service request)."""
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{prefix}-{body[:4]}-{body[4:]}"


def parts_order_reference() -> str:
    return reference_generate("P")


def service_request_reference() -> str:
    return reference_generate("S")


class UnitType(models.TextChoices):
    MOWERS = "Mowers"
    TRIMMERS = "Trimmers"
    BLOWERS = "Blowers"
    GENERATORS = "Generators"
    CHAINSAWS = "Chainsaws"
    PRESSURE_WASHERS = "Pressure Washers"


class Customer(models.Model):
    customer_id = models.CharField("customer ID", max_length=32, unique=True)
    phone = models.CharField(max_length=20, unique=True, help_text="E.164, for example +12065550100.")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer_id"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.name}"


class Equipment(models.Model):
    equipment_id = models.CharField("equipment ID", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    serial_number = models.CharField(max_length=64)
    unit_type = models.CharField(max_length=32, choices=UnitType.choices)
    model = models.CharField(max_length=64)
    owner = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="equipment")

    class Meta:
        ordering = ["equipment_id"]
        verbose_name_plural = "equipment"
        indexes = [models.Index(fields=["unit_type", "model"])]

    def __str__(self) -> str:
        return f"{self.equipment_id} {self.name}"


class EquipmentModel(models.Model):
    """A model of machine (``HRX217``) of a unit type; parts list the models they fit."""

    name = models.CharField(max_length=64, unique=True)
    brand = models.CharField(max_length=64)
    unit_type = models.CharField(max_length=32, choices=UnitType.choices)

    class Meta:
        ordering = ["unit_type", "name"]

    def __str__(self) -> str:
        return f"{self.brand} {self.name}"


class Part(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    unit_type = models.CharField(max_length=32, choices=UnitType.choices)
    compatible_models = models.ManyToManyField(EquipmentModel, related_name="parts", blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sku"]
        indexes = [models.Index(fields=["unit_type"])]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Transaction(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="transactions")
    date = models.DateTimeField()
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    description = models.CharField(max_length=255)

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.amount} {self.description}"


class OrderStatus(models.TextChoices):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class PartsOrder(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="parts_orders")
    equipment = models.ForeignKey(Equipment, on_delete=models.SET_NULL, null=True, blank=True)
    lines = models.JSONField(default=list, help_text='[{"sku": ..., "quantity": ..., "price": ...}]')
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.REQUESTED)
    # What the customer was told and can quote (shown in the SMS confirmation); unique per customer.
    reference = models.CharField(max_length=16, default=parts_order_reference, editable=False, db_index=True)
    # The SMS that asked for it: a retried or replayed turn finds the order instead of creating a second one.
    source_message_sid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "reference"], name="parts_order_reference_per_customer")
        ]

    def __str__(self) -> str:
        return f"Order {self.reference} ({self.status})"


class ServiceStatus(models.TextChoices):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


class ServiceRequest(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="service_requests")
    equipment = models.ForeignKey(Equipment, on_delete=models.SET_NULL, null=True, blank=True)
    problem_description = models.TextField()
    status = models.CharField(max_length=16, choices=ServiceStatus.choices, default=ServiceStatus.OPEN)
    reference = models.CharField(max_length=16, default=service_request_reference, editable=False, db_index=True)
    source_message_sid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "reference"], name="service_request_reference_per_customer")
        ]

    def __str__(self) -> str:
        return f"Service request {self.reference} ({self.status})"


class StoreMode(models.TextChoices):
    """Where sessions live (docs/SESSION_STORE.md). The order is the forward path."""

    REDIS_ONLY = "redis_only", "Redis only (legacy)"
    PARALLEL = "parallel", "Parallel: write both, read Redis"
    CUTOVER = "cutover", "Cutover: read DynamoDB, still write Redis"
    DYNAMODB_ONLY = "dynamodb_only", "DynamoDB only"
    CACHED = "cached", "Cached: Redis hot tier, write-through"
    CACHED_WRITE_BEHIND = "cached_write_behind", "Cached: Redis hot tier, write-behind"


class SessionStoreSetting(models.Model):
    """The one row holding the current session store mode; changed only through store_mode_set."""

    mode = models.CharField(max_length=32, choices=StoreMode.choices)
    changed_at = models.DateTimeField()
    changed_by = models.CharField(max_length=150)
    reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "session store mode"
        verbose_name_plural = "session store mode"

    def __str__(self) -> str:
        return self.get_mode_display()


class SessionStoreModeChange(models.Model):
    """Every mode change: who, when, why, and whether a guard was overridden."""

    from_mode = models.CharField(max_length=32, choices=StoreMode.choices, blank=True)
    to_mode = models.CharField(max_length=32, choices=StoreMode.choices)
    changed_at = models.DateTimeField(db_index=True)
    changed_by = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    forced = models.BooleanField(default=False)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_mode or '-'} → {self.to_mode} by {self.changed_by}"


# --- SMS workflow (migration 0002_workflow) ----------------------------------------------------------


class SmsContact(models.Model):
    """What must outlive a 15-minute session for one phone: the opt-out and whether a session was left open.

    The session item carries a copy of ``opted_out`` so a live conversation needs no query; this row is
    read only when a phone has no live session.
    """

    phone = models.CharField(max_length=20, unique=True, help_text="E.164.")
    opted_out = models.BooleanField(default=False, help_text="STOP received; no replies until START.")
    opted_out_at = models.DateTimeField(null=True, blank=True)
    opted_in_at = models.DateTimeField(null=True, blank=True)
    last_session_started_at = models.DateTimeField(null=True, blank=True)
    session_closed = models.BooleanField(
        default=True, help_text="False while a session may be live; a new session then means the old one expired."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SMS contact"

    def __str__(self) -> str:
        return f"SMS contact {self.pk}{' (opted out)' if self.opted_out else ''}"


class HandoffStatus(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"


class HandoffRequest(models.Model):
    """A customer asked for a person: ops pick these up in the admin."""

    phone = models.CharField(max_length=20, help_text="E.164; call or text the customer back.")
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True)
    node = models.CharField(max_length=64, help_text="Where in the conversation the customer asked.")
    status = models.CharField(max_length=16, choices=HandoffStatus.choices, default=HandoffStatus.OPEN)
    source_message_sid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Hand-off {self.pk} ({self.status})"
