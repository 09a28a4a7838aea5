"""A session as the REST API shows it and replaces it.

GET and PUT round-trip: what GET returns may be sent back by PUT. The attributes the store and the workflow
engine own (``lastActivity``, ``ttl``, ``version``, ``turnLog``, ``turnCount``, ``optedOut``, ``handoff``)
are read-only: a PUT may carry them, ``version`` is checked against the version being replaced, the rest are
kept as the server has them (a client cannot rewrite the turn log or the opt-out, which carriers audit).

``turnLog`` is stored packed (zlib + base64, see ``workflow.engine``); the API shows it unpacked, as
``{"history": [...], "messageLog": [...]}``.
"""

from __future__ import annotations

from typing import Any

from sessions_app.models import Customer, HandoffRequest
from sessions_app.services.sessions import Session, session_save
from sessions_app.services.workflow.engine import HISTORY, MESSAGE_LOG, OPTED_OUT, TURN_COUNT, TURN_LOG, turn_log_read
from sessions_app.services.workflow.nodes import HUMAN_HANDOFF, NODES

HANDOFF = "handoff"
# What GET returns that a client cannot set: kept as stored (``version`` is compared, not copied).
READ_ONLY_ATTRIBUTES = ("lastActivity", "ttl", "version", TURN_LOG, TURN_COUNT, OPTED_OUT, HANDOFF)

ERR_UNKNOWN_NODE = '"{{input}}" is not a node of the SMS workflow; one of: {nodes}.'  # DRF fills in {input}
ERR_UNKNOWN_CUSTOMER = "No customer {customer_id!r} in the CRM."
ERR_VERSION_MISMATCH = "The body's version {given} is not the session's version {current}."


def workflow_nodes() -> list[str]:
    return sorted(NODES)


def customer_exists(*, customer_id: str) -> bool:
    return Customer.objects.filter(customer_id=customer_id).exists()


# Where the customer's own words are kept besides each turn's ``in``: the problem they described (in
# sessionData and in the service-request effect a turn records in messageLog).
CUSTOMER_TEXT_KEYS = frozenset({"problemDescription", "problem_description"})
CUSTOMER_TEXT_HIDDEN = "(hidden: needs lizzy.read_customer_messages)"


def customer_words_masked(value: Any) -> Any:
    """A copy of ``value`` with the customer's words (CUSTOMER_TEXT_KEYS, at any depth) replaced."""
    if isinstance(value, dict):
        return {
            key: (CUSTOMER_TEXT_HIDDEN if key in CUSTOMER_TEXT_KEYS and item else customer_words_masked(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [customer_words_masked(item) for item in value]
    return value


def customer_words_restored(value: Any, current: Any) -> Any:
    """``value`` with every CUSTOMER_TEXT_HIDDEN a caller sent back (a masked GET, PUT unchanged) replaced by
    what ``current`` holds at that place: the mask must never overwrite the customer's words."""
    if isinstance(value, dict):
        old = current if isinstance(current, dict) else {}
        restored = {}
        for key, item in value.items():
            if key in CUSTOMER_TEXT_KEYS and item == CUSTOMER_TEXT_HIDDEN:
                if key in old:
                    restored[key] = old[key]
                continue
            restored[key] = customer_words_restored(item, old.get(key))
        return restored
    if isinstance(value, list):
        old_list = current if isinstance(current, list) else []
        return [
            customer_words_restored(item, old_list[index] if index < len(old_list) else None)
            for index, item in enumerate(value)
        ]
    return value


def session_document(*, session: Session, show_text: bool = False) -> dict[str, Any]:
    """The API's view of a session: the stored document with ``turnLog`` unpacked.

    What the customer wrote (each turn's ``in``) is left out unless ``show_text`` (the caller may read
    customer messages): the same rule as the ops console's session page.
    """
    document = session.to_document()
    if TURN_LOG in document or HISTORY in document or MESSAGE_LOG in document:
        log = turn_log_read(session)
        document.pop(HISTORY, None)
        document.pop(MESSAGE_LOG, None)
        history = log.history if show_text else [_without_text(entry) for entry in log.history]
        message_log = log.message_log if show_text else customer_words_masked(log.message_log)
        document[TURN_LOG] = {HISTORY: history, MESSAGE_LOG: message_log}
    if not show_text and "sessionData" in document:
        document["sessionData"] = customer_words_masked(document["sessionData"])
    return document


def _without_text(entry: Any) -> Any:
    return {key: value for key, value in entry.items() if key != "in"} if isinstance(entry, dict) else entry


def session_replace(
    *,
    phone: str,
    customer_id: str | None,
    current_node: str,
    cached_data: dict[str, Any],
    session_data: dict[str, Any],
    current: Session | None,
) -> Session:
    """Create (``current`` None) or replace the session, conditional on ``current``'s version.

    The engine's attributes travel from ``current`` untouched, except the hand-off flag: it says the
    customer is waiting for a person, which is true only while the session is at the hand-off node.
    """
    extra = dict(current.extra) if current else {}
    left_handoff = current_node != HUMAN_HANDOFF and bool(extra.get(HANDOFF))
    if left_handoff:
        extra[HANDOFF] = False
    session = Session(
        phone=phone,
        customer_id=customer_id,
        current_node=current_node,
        cached_data=cached_data,
        session_data=session_data,
        extra=extra,
    )
    saved = session_save(session=session, expected_version=current.version if current else None)
    if left_handoff:  # nobody is waiting for a person any more: the hand-off list says so too
        HandoffRequest.objects.filter(phone=phone, status="open").update(status="closed")
    return saved
