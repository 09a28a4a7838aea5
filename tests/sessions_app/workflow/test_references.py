"""The reference a customer is texted for an order or a service request: the one stored, listed and searchable."""

from __future__ import annotations

import re
from itertools import chain, repeat

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from lizzy.errors import ServiceUnavailable
from sessions_app import models
from sessions_app.models import Customer, PartsOrder, ServiceRequest
from sessions_app.services import crm as crm_service
from sessions_app.services.workflow import engine
from tests.fixtures.crm import stored_session

REFERENCE = re.compile(r"([PS])-([0-9A-HJKMNP-TV-Z]{4})-([0-9A-HJKMNP-TV-Z]{4})")  # Crockford: no I, L, O, U


def _quoted(reply: str) -> str:
    found = REFERENCE.search(reply)
    assert found, reply
    return found.group(0)


def _order(sms, sid: str = "SMconfirm") -> str:
    for text in ["hi", "2", "1", "1", "1"]:
        sms(text)
    return sms("1", sid=sid).reply


def test_the_order_reference_texted_is_the_one_stored_listed_and_searchable(crm, sms, api_client, ops_admin_client):
    reference = _quoted(_order(sms))
    assert reference.startswith("P-")
    assert PartsOrder.objects.get().reference == reference
    listed = api_client.get("/api/v1/crm/parts-orders/").json()["results"]
    assert [row["reference"] for row in listed] == [reference]
    PartsOrder.objects.create(customer=crm, reference="P-ZZZZ-ZZZZ")
    assert "P-ZZZZ-ZZZZ" in ops_admin_client.get("/admin/sessions_app/partsorder/").content.decode()
    page = ops_admin_client.get("/admin/sessions_app/partsorder/", {"q": reference})
    assert page.status_code == 200
    assert reference in page.content.decode()
    assert "P-ZZZZ-ZZZZ" not in page.content.decode()  # the search found that order only


def test_the_service_request_reference_texted_is_the_one_stored_listed_and_searchable(
    crm, sms, api_client, ops_admin_client
):
    sms("hi")
    sms("3")
    reference = _quoted(sms("Engine won't start").reply)
    assert reference.startswith("S-")
    assert ServiceRequest.objects.get().reference == reference
    listed = api_client.get("/api/v1/crm/service-requests/").json()["results"]
    assert [row["reference"] for row in listed] == [reference]
    page = ops_admin_client.get("/admin/sessions_app/servicerequest/", {"q": reference})
    assert reference in page.content.decode()


def test_a_replayed_confirmation_repeats_the_same_reference_and_orders_once(crm, sms):
    first = _quoted(_order(sms, sid="SMsame"))
    again = sms("1", sid="SMsame")
    assert again.replayed
    assert _quoted(again.reply) == first == PartsOrder.objects.get().reference


def test_a_replay_that_heals_a_lost_order_stores_the_reference_already_texted(crm, sms, monkeypatch):
    real = engine.EFFECTS["parts_order"]
    monkeypatch.setitem(engine.EFFECTS, "parts_order", lambda *args: (_ for _ in ()).throw(RuntimeError("crash")))
    texted = _quoted(_order(sms, sid="SMlost"))
    assert not PartsOrder.objects.exists()
    monkeypatch.setitem(engine.EFFECTS, "parts_order", real)
    sms("1", sid="SMlost")
    assert PartsOrder.objects.get().reference == texted


def test_after_a_conflict_the_reference_texted_is_the_one_stored(crm, sms, monkeypatch):
    for text in ["hi", "2", "1", "1", "1"]:
        sms(text)
    real_save = engine.session_save
    raced = []

    def save_after_a_competing_message(*, session, expected_version):
        if not raced:
            raced.append(True)
            sms("HELP", sid="SMcompetitor")
        return real_save(session=session, expected_version=expected_version)

    monkeypatch.setattr(engine, "session_save", save_after_a_competing_message)
    result = sms("1", sid="SMconfirm")
    assert result.attempts == 2
    assert _quoted(result.reply) == PartsOrder.objects.get().reference
    assert stored_session()["currentNode"] == "MAIN_MENU"


def test_a_reference_the_customer_already_has_is_drawn_again(crm, monkeypatch):
    PartsOrder.objects.create(customer=crm, reference="P-AAAA-AAAA")
    draws = chain(["P-AAAA-AAAA"], repeat("P-BBBB-BBBB"))
    monkeypatch.setattr(crm_service, "parts_order_reference", lambda: next(draws))
    assert crm_service.parts_order_reference_new(customer_id=crm.customer_id) == "P-BBBB-BBBB"


def test_a_generator_that_only_clashes_fails_loudly(crm, monkeypatch):
    PartsOrder.objects.create(customer=crm, reference="P-AAAA-AAAA")
    monkeypatch.setattr(crm_service, "parts_order_reference", lambda: "P-AAAA-AAAA")
    with pytest.raises(ServiceUnavailable) as error:
        crm_service.parts_order_reference_new(customer_id=crm.customer_id)
    assert error.value.message == crm_service.ERR_REFERENCE_EXHAUSTED.format(
        kind="PartsOrder", draws=crm_service.REFERENCE_DRAWS
    )


def test_references_are_unique_per_customer_only(crm):
    other = Customer.objects.create(customer_id="CUST999", phone="+12065550999", name="Sam Other")
    PartsOrder.objects.create(customer=crm, reference="P-CCCC-CCCC")
    PartsOrder.objects.create(customer=other, reference="P-CCCC-CCCC")
    with pytest.raises(IntegrityError), transaction.atomic():
        PartsOrder.objects.create(customer=crm, reference="P-CCCC-CCCC")


def test_generated_references_are_well_formed_and_spread():
    drawn = [models.parts_order_reference() for _ in range(2000)] + [models.service_request_reference()]
    assert all(REFERENCE.fullmatch(reference) for reference in drawn)
    assert len(set(drawn)) == len(drawn)


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_existing_row_its_own_reference():
    executor = MigrationExecutor(connection)
    before, after = [("sessions_app", "0003_store_modes")], [("sessions_app", "0004_references")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    customer = old.get_model("sessions_app", "Customer").objects.create(
        customer_id="CUSTOLD", phone="+12065550142", name="Old Customer"
    )
    for index in range(30):
        old.get_model("sessions_app", "PartsOrder").objects.create(customer=customer, lines=[], status="requested")
        old.get_model("sessions_app", "ServiceRequest").objects.create(
            customer=customer, problem_description=f"problem {index}", status="open"
        )
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    for model, prefix in ((PartsOrder, "P"), (ServiceRequest, "S")):
        references = list(model.objects.values_list("reference", flat=True))
        assert len(references) == 30 == len(set(references))
        assert all(REFERENCE.fullmatch(reference) and reference[0] == prefix for reference in references)
    assert ServiceRequest.objects.filter(problem_description="problem 7").exists()
