"""The engine: apply one inbound SMS to the phone's session, write it once, then run its side effects.

A turn reads the session with ``session_get`` and writes it with ``session_save`` (conditional on the
version it read), so on DynamoDB it costs one GetItem and one PutItem. When another message for the same
phone wins the race (``SessionConflict``), the turn is rebuilt from a fresh read and applied again, a
bounded number of times with small jittered sleeps. Side effects (orders, service requests, opt-out...)
run only after the write has won, keyed by the MessageSid, so a retried turn cannot duplicate them.

De-duplication lives in the session item itself: ``messageLog`` keeps the last MessageSids with the
reply that was sent, so a retried delivery gets the same reply and the state does not move. That log and
the turn ``history`` travel packed in one attribute, ``turnLog`` (zlib-compressed JSON, base64 text),
as AWS's guidance for large attributes suggests: unpacked they were ~85 % of a 13 KB item, paid for in
write units, read units, codec time and Redis memory on every turn (docs/WORKFLOW.md).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import random
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from lizzy.dynamodb import iso_utc
from lizzy.errors import ServiceUnavailable
from lizzy.phone import hash_phone
from lizzy.redis import json_dumps, json_loads
from sessions_app import selectors
from sessions_app.services import crm
from sessions_app.services.sessions import Session, SessionConflict, session_new, session_save
from sessions_app.services.workflow.base import HOME, AnyReply, Pick, Turn, fit_reply, reply_number
from sessions_app.services.workflow.nodes import HELP_TEXT, MAIN_MENU, NODES, greeting, node_leave, text_interpret

logger = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})  # Twilio's opt-out keywords
START_WORDS = frozenset({"START", "YES", "UNSTOP"})  # Twilio's opt-in keywords (only while opted out)
HELP_WORDS = frozenset({"HELP", "INFO"})
MENU_WORDS = frozenset({"MENU", "MAINMENU", "HOME", "RESTART", "STARTOVER"})
# "Say hi to start": a greeting (or START while subscribed) goes home from any node, never "didn't get that".
GREETING_WORDS = frozenset(
    {"HI", "HII", "HIYA", "HELLO", "HELO", "HEY", "HEYY", "HEYA", "HOWDY", "YO", "SUP", "START", "GREETINGS"}
    | {"HITHERE", "HELLOTHERE", "HEYTHERE", "HILIZZY", "HEYLIZZY", "HELLOLIZZY", "HELLOAGAIN", "HIAGAIN"}
    | {"GOODMORNING", "GOODAFTERNOON", "GOODEVENING", "MORNING", "AFTERNOON", "EVENING"}
)
MORE_WORDS = frozenset({"MORE", "NEXT"})
KEYWORD_MAX_CHARS = 16

RETRY_BACKOFF_BASE_SECONDS = 0.01
RETRY_BACKOFF_CAP_SECONDS = 0.25

NOTE_EXPIRED = "Your previous session expired, so we're starting over."
NOTE_RESUBSCRIBED = "You're subscribed again."
NOTE_NOT_UNDERSTOOD = "Sorry, I didn't get that. Reply with {expects}."
HINT_FREE_TEXT = 'or tell me what you need, like "blade for my mower"'
ERR_BUSY = "Too many messages for this phone at once; the message was not applied. Try again shortly."

# session.extra attributes the engine owns (camelCase like the rest of the item)
TURN_COUNT = "turnCount"
TURN_LOG = "turnLog"  # packed {"history": [...], "messageLog": [...]}, see turn_log_read
HISTORY = "history"
MESSAGE_LOG = "messageLog"
OPTED_OUT = "optedOut"
TURN_LOG_LEVEL = 6  # zlib: a 14 KB log packs to ~1.4 KB of text in ~75 µs
# What the customer wrote, kept per turn for the person answering a hand-off (the ops console shows it to
# staff allowed to read it); two SMS segments are enough to read a question, and bound the item.
HISTORY_TEXT_MAX_CHARS = 320


@dataclass
class TurnLog:
    """The turn history and the MessageSid log of a session, unpacked."""

    history: list[dict[str, Any]]
    message_log: list[dict[str, Any]]


def turn_log_read(session: Session) -> TurnLog:
    """The session's turn log; items written before packing (plain ``history``/``messageLog``) read too.

    A log that cannot be unpacked (edited by hand, truncated) reads as empty rather than failing the
    customer's turn: de-duplication then only covers messages from this turn on.
    """
    packed = session.extra.get(TURN_LOG)
    if packed is None:
        return TurnLog(list(session.extra.get(HISTORY) or []), list(session.extra.get(MESSAGE_LOG) or []))
    try:
        data = json_loads(zlib.decompress(base64.b64decode(packed, validate=True)))
        return TurnLog(list(data.get(HISTORY) or []), list(data.get(MESSAGE_LOG) or []))
    except (TypeError, ValueError, AttributeError, binascii.Error, zlib.error):
        logger.warning("unreadable %s in a session item; starting a new one", TURN_LOG)
        return TurnLog([], [])


def turn_log_write(session: Session, log: TurnLog) -> None:
    packed = zlib.compress(json_dumps({HISTORY: log.history, MESSAGE_LOG: log.message_log}).encode(), TURN_LOG_LEVEL)
    session.extra[TURN_LOG] = base64.b64encode(packed).decode("ascii")
    session.extra.pop(HISTORY, None)  # the unpacked form of items written before packing
    session.extra.pop(MESSAGE_LOG, None)


class WorkflowBusy(ServiceUnavailable):
    code = "session_busy"


@dataclass
class TurnOutcome:
    session: Session
    reply: str
    effects: list[dict[str, Any]]
    replayed: bool
    node_before: str | None
    created: bool


@dataclass
class SmsReply:
    """What the webhook answers: the reply text ("" means send nothing) and how the turn went."""

    reply: str
    node: str
    turn_count: int
    replayed: bool
    attempts: int


def _keyword(text: str) -> str:
    if len(text) > KEYWORD_MAX_CHARS:
        return ""
    return re.sub(r"[^A-Za-z]", "", text).upper()


def _compose(turn: Turn, node_name: str) -> str:
    node = NODES[node_name]
    prefix = "\n".join(turn.notes)
    budget = 1600 - (len(prefix) + 1 if prefix else 0)
    body = node.render(turn, budget)
    return fit_reply("\n".join(part for part in (prefix, body) if part))


def _move(turn: Turn, target: str) -> str:
    target = turn.home if target == HOME else target
    if target != turn.session.current_node:
        node_leave(turn, target)
    turn.session.current_node = target
    return _compose(turn, target)


def _one_of(choices: list[str]) -> str:
    """ "1, 2 or MENU": an English list, each choice once."""
    choices = list(dict.fromkeys(choices))
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def _not_understood(turn: Turn) -> str:
    node = NODES[turn.session.current_node]
    if node.not_understood:
        return node.not_understood
    choices = node.accepts.expects(turn)
    at_home = turn.session.current_node == turn.home
    if not at_home or not choices:
        choices = [*choices, "MENU"]
    expects = _one_of(choices)
    if node.interpret and turn.session.customer_id:
        expects = f"{expects}, {HINT_FREE_TEXT}"
    return NOTE_NOT_UNDERSTOOD.format(expects=expects)


def _new_session(phone: str, turn_now: dt.datetime) -> tuple[Session, list[str], bool]:
    """A phone with no live session: who is it, did they opt out, did a previous session lapse?"""
    customer = selectors.customer_get_by_phone(phone=phone)
    session = session_new(phone=phone, customer_id=customer.customer_id if customer else None)
    contact = selectors.sms_contact_get(phone=phone)
    session.extra[OPTED_OUT] = bool(contact and contact.opted_out)
    expired = bool(contact and not contact.session_closed and contact.last_session_started_at)
    return session, [NOTE_EXPIRED] if expired else [], expired


def turn_apply(*, session: Session | None, phone: str, text: str, message_sid: str, now: dt.datetime) -> TurnOutcome:
    """Apply one message to the session, in place. Pure apart from CRM reads: nothing is written here."""
    created = session is None
    notes: list[str] = []
    if session is None:
        session, notes, _expired = _new_session(phone, now)
        session.current_node = "MAIN_MENU" if session.customer_id else "ONBOARDING"
        log = TurnLog([], [])
    else:
        log = turn_log_read(session)
        for entry in log.message_log:
            if entry.get("sid") == message_sid:
                return TurnOutcome(session, entry.get("reply", ""), entry.get("effects", []), True, None, False)
    node_before = None if created else session.current_node
    if session.current_node not in NODES:
        session.current_node = "MAIN_MENU" if session.customer_id else "ONBOARDING"
    turn = Turn(session=session, phone=phone, message_sid=message_sid, text=text, now=now, notes=notes, first=created)
    if created:
        turn.effect("session_started")
    reply = _dispatch(turn, created)
    _record(turn, node_before, reply, log)
    return TurnOutcome(session, reply, turn.effects, False, node_before, created)


def _dispatch(turn: Turn, created: bool) -> str:
    session = turn.session
    word = _keyword(turn.text)
    if session.extra.get(OPTED_OUT):
        if word in START_WORDS:
            session.extra[OPTED_OUT] = False
            turn.effect("opt_in")
            turn.notes = [NOTE_RESUBSCRIBED]
            return _move(turn, HOME)
        # Carriers require HELP to be answered even after STOP; nothing else is.
        return HELP_TEXT if word in HELP_WORDS else ""
    if word in STOP_WORDS:
        # Twilio itself confirms the opt-out to the customer; a reply of ours would be blocked.
        session.extra[OPTED_OUT] = True
        turn.effect("opt_out")
        return ""
    if word in HELP_WORDS:
        turn.notes.append(HELP_TEXT)
        return _compose(turn, session.current_node)
    if word in MENU_WORDS or word in GREETING_WORDS:
        return _move(turn, HOME)
    if created:
        return _first_message(turn)
    node = NODES[session.current_node]
    if word in MORE_WORDS and isinstance(node.accepts, Pick):
        node.accepts.more(turn)
        return _compose(turn, session.current_node)
    target = None
    if isinstance(node.accepts, AnyReply) and node.interpret:
        target = text_interpret(turn, turn.text)  # "blade for my HRX217" after END does what it says
    if target is None:
        target = node.accepts.accept(turn, turn.text)
    if target is None and node.interpret:
        target = text_interpret(turn, turn.text)
    if target is None:
        turn.notes.append(_not_understood(turn))
        return _compose(turn, session.current_node)
    return _move(turn, target)


def _first_message(turn: Turn) -> str:
    """A session's first message is never read as an answer to a menu nobody sent; free text is read."""
    target = None
    if reply_number(turn.text) is None:
        greeted_at = len(turn.notes)
        target = text_interpret(turn, turn.text)
        if target is not None:
            turn.notes.insert(greeted_at, greeting(turn))  # before what the message did, and only once
            turn.first = False
    return _move(turn, target or HOME)


def _record(turn: Turn, node_before: str | None, reply: str, log: TurnLog) -> None:
    """Count the turn and keep bounded history and de-duplication logs, so the item stays far below 400 KB."""
    extra = turn.session.extra
    extra[TURN_COUNT] = int(extra.get(TURN_COUNT, 0)) + 1
    entry = {
        "at": iso_utc(turn.now),
        "sid": turn.message_sid,
        "from": node_before,
        "to": turn.session.current_node,
        "inLen": len(turn.text),
        "in": turn.text[:HISTORY_TEXT_MAX_CHARS],
        "outLen": len(reply),
    }
    log.history = [*log.history, entry][-settings.LIZZY_WORKFLOW_HISTORY_LIMIT :]
    log_entry = {"sid": turn.message_sid, "reply": reply, "effects": turn.effects}
    log.message_log = [*log.message_log, log_entry][-settings.LIZZY_WORKFLOW_MESSAGE_LOG_LIMIT :]
    turn_log_write(turn.session, log)


# --- Side effects ---------------------------------------------------------------------------------

EFFECTS: dict[str, Callable[..., Any]] = {
    "parts_order": lambda phone, sid, args: crm.parts_order_request(message_sid=sid, **args),
    "service_request": lambda phone, sid, args: crm.service_request_create(message_sid=sid, **args),
    "handoff": lambda phone, sid, args: crm.handoff_request(phone=phone, message_sid=sid, **args),
    "opt_out": lambda phone, sid, args: crm.sms_opt_out(phone=phone),
    "opt_in": lambda phone, sid, args: crm.sms_opt_in(phone=phone),
    "session_started": lambda phone, sid, args: crm.sms_session_started(phone=phone),
    "session_closed": lambda phone, sid, args: crm.sms_session_closed(phone=phone),
}
# Re-run when a delivery is replayed (they are keyed by MessageSid): this heals a crash between the
# session write and the effect. The contact-state effects are not: replaying an old START must not
# undo a later STOP.
REPLAYABLE_EFFECTS = frozenset({"parts_order", "service_request", "handoff"})


def effects_apply(*, phone: str, message_sid: str, effects: list[dict[str, Any]], replay: bool = False) -> None:
    for effect in effects:
        kind = effect["kind"]
        if replay and kind not in REPLAYABLE_EFFECTS:
            continue
        args = {key: value for key, value in effect.items() if key != "kind"}
        try:
            EFFECTS[kind](phone, message_sid, args)
        except Exception:
            # The reply is already promised and stored; a replay of this MessageSid will try again.
            logger.exception("effect %s of message %s failed", kind, message_sid)


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(RETRY_BACKOFF_CAP_SECONDS, RETRY_BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311


def sms_message_handle(*, phone: str, text: str, message_sid: str) -> SmsReply:
    """Apply one inbound SMS (phone already E.164) and return the reply.

    Raises ``WorkflowBusy`` (503) when the turn lost the optimistic-lock race
    ``LIZZY_WORKFLOW_MAX_ATTEMPTS`` times in a row; nothing was applied then.
    """
    attempts = max(1, settings.LIZZY_WORKFLOW_MAX_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        current = selectors.session_get(phone=phone)  # the store of the mode now (issue 4)
        expected_version = current.version if current else None
        outcome = turn_apply(  # applied to the freshly read object: a retry reads the session again
            session=current,
            phone=phone,
            text=text,
            message_sid=message_sid,
            now=timezone.now(),
        )
        if outcome.replayed:
            effects_apply(phone=phone, message_sid=message_sid, effects=outcome.effects, replay=True)
            logger.info("sms replay of %s for %s", message_sid, hash_phone(phone))
            return SmsReply(outcome.reply, outcome.session.current_node, _turns(outcome.session), True, attempt)
        try:
            stored = session_save(session=outcome.session, expected_version=expected_version)
        except SessionConflict:
            time.sleep(_backoff(attempt))
            continue
        effects_apply(phone=phone, message_sid=message_sid, effects=outcome.effects)
        logger.info(
            "sms turn for %s: %s -> %s (in %d chars, out %d chars, attempt %d)",
            hash_phone(phone),
            outcome.node_before or "-",
            stored.current_node,
            len(text),
            len(outcome.reply),
            attempt,
        )
        return SmsReply(outcome.reply, stored.current_node, _turns(stored), False, attempt)
    logger.warning("sms turn for %s gave up after %d conflicting attempts", hash_phone(phone), attempts)
    raise WorkflowBusy(ERR_BUSY, details={"attempts": attempts})


def _turns(session: Session) -> int:
    return int(session.extra.get(TURN_COUNT, 0))


__all__ = [
    "MAIN_MENU",
    "SmsReply",
    "TurnLog",
    "WorkflowBusy",
    "effects_apply",
    "sms_message_handle",
    "turn_apply",
    "turn_log_read",
]
