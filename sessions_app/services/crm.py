"""CRM writes the SMS workflow makes: parts orders, service requests, opt-out and hand-off.

Every write that a conversation turn causes is keyed by the inbound ``MessageSid``: the workflow applies
it only after its session write has won, and a replayed or retried turn applies it again, so each of
these services must be idempotent for one sid (``get_or_create`` on ``source_message_sid``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from lizzy.errors import NotFound, ServiceUnavailable
from lizzy.phone import hash_phone
from sessions_app.models import (
    Customer,
    Equipment,
    HandoffRequest,
    Part,
    PartsOrder,
    ServiceRequest,
    SmsContact,
    parts_order_reference,
    service_request_reference,
)
from sessions_app.services.ops import session_handoff_clear

logger = logging.getLogger(__name__)

ERR_CUSTOMER_MISSING = "Customer {customer_id} does not exist."
ERR_PART_MISSING = "Part {sku} does not exist."
ERR_REFERENCE_EXHAUSTED = "No free {kind} reference after {draws} draws; the reference generator is broken."
REFERENCE_DRAWS = 5  # a clash needs ~1e-7 luck per draw; five in a row means the generator is broken


def _reference_new(model: type, generate: Callable[[], str], customer_id: str) -> str:
    """A fresh reference for this customer's next order or request, told to them before it is written.

    The SMS reply is composed before the row exists (effects run after the session write), so the
    reference is drawn here, checked against the customer's own, and travels in the effect's arguments.
    """
    for _ in range(REFERENCE_DRAWS):
        reference = generate()
        if not model.objects.filter(customer__customer_id=customer_id, reference=reference).exists():
            return reference
    raise ServiceUnavailable(ERR_REFERENCE_EXHAUSTED.format(kind=model.__name__, draws=REFERENCE_DRAWS))


def parts_order_reference_new(*, customer_id: str) -> str:
    return _reference_new(PartsOrder, parts_order_reference, customer_id)


def service_request_reference_new(*, customer_id: str) -> str:
    return _reference_new(ServiceRequest, service_request_reference, customer_id)


def _customer(customer_id: str) -> Customer:
    customer = Customer.objects.filter(customer_id=customer_id).first()
    if customer is None:
        raise NotFound(ERR_CUSTOMER_MISSING.format(customer_id=customer_id))
    return customer


def _equipment(customer: Customer, equipment_id: str | None) -> Equipment | None:
    if not equipment_id:
        return None
    return Equipment.objects.filter(equipment_id=equipment_id, owner=customer).first()


def _once(model: type, message_sid: str, create: dict) -> tuple[object, bool]:
    """``get_or_create`` on the sid; a concurrent duplicate loses the unique index and reads the winner."""
    try:
        with transaction.atomic():
            return model.objects.get_or_create(source_message_sid=message_sid, defaults=create)
    except IntegrityError:
        return model.objects.get(source_message_sid=message_sid), False


def parts_order_request(
    *,
    customer_id: str,
    sku: str,
    quantity: int = 1,
    equipment_id: str | None = None,
    reference: str | None = None,
    message_sid: str,
) -> PartsOrder:
    """A requested parts order (status ``requested``): the dealer readies it and texts the customer.

    ``reference`` is the one the customer was already told (a new one is drawn when none is given).
    """
    customer = _customer(customer_id)
    part = Part.objects.filter(sku=sku).first()
    if part is None:
        raise NotFound(ERR_PART_MISSING.format(sku=sku))
    order, created = _once(
        PartsOrder,
        message_sid,
        {
            "customer": customer,
            "equipment": _equipment(customer, equipment_id),
            "lines": [{"sku": part.sku, "name": part.name, "quantity": quantity, "price": str(Decimal(part.price))}],
            **({"reference": reference} if reference else {}),
        },
    )
    if created:
        logger.info("parts order %s (%s) requested by %s", order.pk, order.reference, customer.customer_id)
    return order


def service_request_create(
    *,
    customer_id: str,
    problem_description: str,
    equipment_id: str | None = None,
    reference: str | None = None,
    message_sid: str,
) -> ServiceRequest:
    customer = _customer(customer_id)
    request, created = _once(
        ServiceRequest,
        message_sid,
        {
            "customer": customer,
            "equipment": _equipment(customer, equipment_id),
            "problem_description": problem_description,
            **({"reference": reference} if reference else {}),
        },
    )
    if created:
        logger.info("service request %s (%s) opened by %s", request.pk, request.reference, customer.customer_id)
    return request


def handoff_request(*, phone: str, customer_id: str | None, node: str, message_sid: str) -> HandoffRequest:
    customer = Customer.objects.filter(customer_id=customer_id).first() if customer_id else None
    handoff, created = _once(HandoffRequest, message_sid, {"phone": phone, "customer": customer, "node": node})
    if created:
        logger.info("hand-off %s requested by phone %s", handoff.pk, hash_phone(phone))
    return handoff


def sms_opt_out(*, phone: str) -> SmsContact:
    """STOP: recorded in the database because it must outlive the 15-minute session."""
    contact, _ = SmsContact.objects.update_or_create(
        phone=phone, defaults={"opted_out": True, "opted_out_at": timezone.now()}
    )
    logger.info("phone %s opted out", hash_phone(phone))
    return contact


def sms_opt_in(*, phone: str) -> SmsContact:
    contact, _ = SmsContact.objects.update_or_create(
        phone=phone, defaults={"opted_out": False, "opted_in_at": timezone.now()}
    )
    logger.info("phone %s opted in", hash_phone(phone))
    return contact


def sms_session_started(*, phone: str) -> SmsContact:
    """A new session began: if it lapses without END, the next one starts with an "expired" note."""
    contact, _ = SmsContact.objects.update_or_create(
        phone=phone, defaults={"last_session_started_at": timezone.now(), "session_closed": False}
    )
    return contact


def sms_session_closed(*, phone: str) -> int:
    """The customer ended the conversation: the next session is a fresh start, not an expiry."""
    return SmsContact.objects.filter(phone=phone).update(session_closed=True)


def handoff_close(*, handoff_ids: list[int]) -> int:
    """Ops took over these conversations; returns how many were still open. The sessions' ``handoff``
    flags are cleared too (conditional saves), so the session and the hand-off list agree."""
    with transaction.atomic():
        phones = list(
            HandoffRequest.objects.select_for_update()
            .filter(pk__in=handoff_ids, status="open")
            .values_list("phone", flat=True)
        )
        closed = HandoffRequest.objects.filter(pk__in=handoff_ids, status="open").update(status="closed")
    for phone in sorted(set(phones)):
        if not HandoffRequest.objects.filter(phone=phone, status="open").exists():
            session_handoff_clear(phone=phone)
    return closed
