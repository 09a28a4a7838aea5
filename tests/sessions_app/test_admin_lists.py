"""The CRM lists a person works from: hand-offs masked like live sessions, requests that say what is wrong,
orders that name the part."""

from __future__ import annotations

import re

import pytest

from lizzy.phone import phone_ref
from sessions_app.models import Customer, HandoffRequest, PartsOrder, ServiceRequest
from tests.sessions_app.factories import SEED_PHONE

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(db):
    return Customer.objects.create(customer_id="CUST123", phone=SEED_PHONE, name="Jordan Rivera")


def test_the_handoff_list_masks_phones_and_links_the_session_by_reference(customer, ops_viewer_client):
    HandoffRequest.objects.create(phone=SEED_PHONE, customer=customer, node="MAIN_MENU")
    HandoffRequest.objects.create(phone="+12065550177", node="PARTS_LIST")
    html = ops_viewer_client.get("/admin/sessions_app/handoffrequest/").content.decode()
    assert "+1******0100" in html
    assert "+1******0177" in html
    assert "2065550100" not in html
    assert "2065550177" not in html
    assert f'href="/admin/ops/sessions/{phone_ref(SEED_PHONE)}/" class="handoff-session"' in html


def test_service_requests_show_the_problem_shortened_and_escaped(customer, ops_admin_client, ops_viewer_client):
    ServiceRequest.objects.create(customer=customer, problem_description="Engine won't start <b>since Monday</b>")
    ServiceRequest.objects.create(customer=customer, problem_description="Pull cord stuck. " + "x" * 200)
    # a viewer (no lizzy.read_customer_messages) gets the problem masked (review 16)
    masked = ops_viewer_client.get("/admin/sessions_app/servicerequest/").content.decode()
    assert "Engine won" not in masked
    assert "Pull cord" not in masked
    assert "(hidden: needs lizzy.read_customer_messages)" in masked
    html = ops_admin_client.get("/admin/sessions_app/servicerequest/").content.decode()
    assert "Engine won&#x27;t start &lt;b&gt;since Monday&lt;/b&gt;" in html
    shortened = re.search(r"Pull cord stuck\. x+…", html)
    assert shortened
    assert len(shortened.group(0)) == 80


def test_parts_orders_name_each_part_with_quantity_and_sku(customer, ops_viewer_client):
    PartsOrder.objects.create(
        customer=customer,
        lines=[
            {"sku": "HONHRX217-SP", "name": "Honda HRX217 Spark plug", "quantity": 2, "price": "4.49"},
            {"sku": "HONHRX217-AF", "name": "Honda HRX217 Air filter", "quantity": 1, "price": "12.99"},
        ],
    )
    PartsOrder.objects.create(customer=customer, lines=[{"sku": "OLD-SKU", "quantity": 1}])  # before names
    html = ops_viewer_client.get("/admin/sessions_app/partsorder/").content.decode()
    assert '2 × Honda HRX217 Spark plug <span class="quiet">(HONHRX217-SP)</span>' in html
    assert '1 × Honda HRX217 Air filter <span class="quiet">(HONHRX217-AF)</span>' in html
    assert '1 × OLD-SKU <span class="quiet">(OLD-SKU)</span>' in html
