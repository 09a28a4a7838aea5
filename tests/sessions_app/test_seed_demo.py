import pytest
from django.core.management import call_command

from sessions_app.models import Customer, Equipment, Part, Transaction


@pytest.mark.django_db
def test_seed_demo_loads_the_seed_customer_and_is_idempotent():
    call_command("seed_demo")
    counts = (Customer.objects.count(), Equipment.objects.count(), Part.objects.count(), Transaction.objects.count())
    call_command("seed_demo")
    assert counts == (
        Customer.objects.count(),
        Equipment.objects.count(),
        Part.objects.count(),
        Transaction.objects.count(),
    )
    customer = Customer.objects.get(customer_id="CUST123")
    assert customer.phone == "+12065550100"
    equipment = Equipment.objects.get(equipment_id="EQ123")
    assert (equipment.name, equipment.serial_number, equipment.unit_type, equipment.model, equipment.owner) == (
        "Honda HRX217",
        "MZCG-1234567",
        "Mowers",
        "HRX217",
        customer,
    )
    assert counts[0] >= 20
    assert Part.objects.filter(unit_type="Mowers", compatible_models__name="HRX217").count() >= 3
    assert len({e.unit_type for e in Equipment.objects.all()}) >= 4
