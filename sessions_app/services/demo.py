"""Demo CRM data: a believable dealer catalogue, the same on every run (idempotent)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from sessions_app.models import Customer, Equipment, EquipmentModel, Part, Transaction, UnitType

# Seed 000's example customer, exactly as the seed shows it.
SEED_CUSTOMER = {
    "customer_id": "CUST123",
    "phone": "+12065550100",
    "name": "Jordan Rivera",
    "email": "jordan.rivera@example.com",
}
SEED_EQUIPMENT = {
    "equipment_id": "EQ123",
    "name": "Honda HRX217",
    "serial_number": "MZCG-1234567",
    "unit_type": UnitType.MOWERS,
    "model": "HRX217",
}

MODELS: dict[str, list[tuple[str, str, str]]] = {
    # unit type: (brand, model, serial prefix)
    UnitType.MOWERS: [("Honda", "HRX217", "MZCG"), ("Toro", "Recycler 22", "TRC"), ("Husqvarna", "LC221RH", "HQL")],
    UnitType.TRIMMERS: [("Stihl", "FS 56 RC-E", "STF"), ("Echo", "SRM-225", "ESR")],
    UnitType.BLOWERS: [("Stihl", "BR 600", "STB"), ("Echo", "PB-580T", "EPB")],
    UnitType.GENERATORS: [("Honda", "EU2200i", "EAMT"), ("Generac", "GP3500", "GNG")],
    UnitType.CHAINSAWS: [("Stihl", "MS 271", "STM"), ("Husqvarna", "450 Rancher", "HQR")],
}
PARTS: dict[str, list[tuple[str, str]]] = {
    # unit type: (part name, price)
    UnitType.MOWERS: [
        ("Air filter", "12.99"),
        ("Spark plug", "4.49"),
        ("Blade set", "34.95"),
        ("Drive belt", "22.50"),
        ("Fuel filter", "6.75"),
    ],
    UnitType.TRIMMERS: [
        ("Trimmer line 0.095in", "9.99"),
        ("Trimmer head", "27.00"),
        ("Spark plug", "4.49"),
        ("Air filter", "8.25"),
    ],
    UnitType.BLOWERS: [
        ("Air filter", "11.50"),
        ("Spark plug", "4.49"),
        ("Blower tube", "19.99"),
        ("Fuel line kit", "7.95"),
    ],
    UnitType.GENERATORS: [
        ("Oil filter", "9.49"),
        ("Spark plug", "5.25"),
        ("Air filter", "14.75"),
        ("Fuel valve", "24.00"),
    ],
    UnitType.CHAINSAWS: [
        ("Chain 18in", "26.99"),
        ("Guide bar 18in", "39.95"),
        ("Air filter", "10.25"),
        ("Spark plug", "4.49"),
    ],
}
FIRST = [
    "Avery",
    "Blake",
    "Casey",
    "Dana",
    "Emerson",
    "Finley",
    "Gray",
    "Harper",
    "Indigo",
    "Jules",
    "Kai",
    "Logan",
    "Morgan",
    "Noel",
    "Oakley",
    "Parker",
    "Quinn",
    "Reese",
    "Sage",
    "Taylor",
    "Rowan",
    "Skyler",
]
LAST = ["Nguyen", "Patel", "Okafor", "Schmidt", "Garcia", "Kim", "Olsen", "Haddad", "Moreau", "Silva", "Kowalski"]
PURCHASES = [
    "Spring tune-up",
    "Blade sharpening",
    "Parts order",
    "Oil change service",
    "Carburetor cleaning",
    "Seasonal storage prep",
    "Warranty repair",
    "Chain sharpening",
]
DEMO_CUSTOMERS = 24


@dataclass
class DemoSummary:
    customers: int
    equipment: int
    parts: int
    transactions: int


def _sku(brand: str, model: str, part: str) -> str:
    code = "".join(ch for ch in f"{brand[:3]}{model}".upper() if ch.isalnum())[:10]
    return f"{code}-{''.join(w[0] for w in part.upper().split())[:4]}"


@transaction.atomic
def demo_data_seed(*, customers: int = DEMO_CUSTOMERS) -> DemoSummary:
    """Create (or bring up to date) the demo catalogue; running it twice changes nothing."""
    rng = random.Random(20251117)  # fixed: the same catalogue every run  # noqa: S311
    for unit_type, models in MODELS.items():
        for brand, model, _prefix in models:
            equipment_model, _ = EquipmentModel.objects.update_or_create(
                name=model, defaults={"brand": brand, "unit_type": unit_type}
            )
            for part_name, price in PARTS[unit_type]:
                part, _ = Part.objects.update_or_create(
                    sku=_sku(brand, model, part_name),
                    defaults={
                        "name": f"{brand} {model} {part_name}",
                        "unit_type": unit_type,
                        "price": Decimal(price),
                        "stock": rng.randint(0, 40),
                    },
                )
                part.compatible_models.add(equipment_model)
    owner, _ = Customer.objects.update_or_create(customer_id=SEED_CUSTOMER["customer_id"], defaults=SEED_CUSTOMER)
    Equipment.objects.update_or_create(
        equipment_id=SEED_EQUIPMENT["equipment_id"], defaults={**SEED_EQUIPMENT, "owner": owner}
    )
    all_models = [(unit_type, brand, model, prefix) for unit_type, ms in MODELS.items() for brand, model, prefix in ms]
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    for index in range(customers):
        if index == 0:
            customer = owner
        else:
            name = f"{FIRST[index % len(FIRST)]} {LAST[index % len(LAST)]}"
            customer, _ = Customer.objects.update_or_create(
                customer_id=f"CUST{1000 + index}",
                defaults={
                    "phone": f"+1206555{index:04d}",
                    "name": name,
                    "email": f"{name.lower().replace(' ', '.')}@example.com",
                },
            )
            for slot in range(1 + index % 3):
                unit_type, brand, model, prefix = all_models[(index * 3 + slot) % len(all_models)]
                Equipment.objects.update_or_create(
                    equipment_id=f"EQ{2000 + index * 10 + slot}",
                    defaults={
                        "name": f"{brand} {model}",
                        "serial_number": f"{prefix}-{rng.randint(1000000, 9999999)}",
                        "unit_type": unit_type,
                        "model": model,
                        "owner": customer,
                    },
                )
        if not customer.transactions.exists():
            Transaction.objects.bulk_create(
                Transaction(
                    customer=customer,
                    date=now - dt.timedelta(days=30 * months + rng.randint(0, 20)),
                    amount=Decimal(rng.randint(1500, 45000)) / 100,
                    description=rng.choice(PURCHASES),
                )
                for months in range(1 + index % 6)
            )
    return DemoSummary(
        customers=Customer.objects.count(),
        equipment=Equipment.objects.count(),
        parts=Part.objects.count(),
        transactions=Transaction.objects.count(),
    )
