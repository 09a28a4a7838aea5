"""The session document and the contract every session store keeps (like Django's ``SessionBase``).

A session is one document per phone: exactly seed 000's item (``phone``, ``customerId``,
``currentNode``, ``cachedData``, ``sessionData``, ``lastActivity``, ``ttl``) plus ``version`` for
optimistic locking. Every save refreshes ``lastActivity`` and ``ttl``; every read treats a session whose
``ttl`` has passed as absent.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import status

from lizzy.dynamodb import iso_utc
from lizzy.errors import ApplicationError
from lizzy.phone import mask_phone

logger = logging.getLogger(__name__)

MAIN_MENU = "MAIN_MENU"
SESSION_DATA_KEYS = (
    "selectedEquipmentId",
    "selectedEquipmentName",
    "selectedEquipmentSN",
    "filterUnitType",
    "filterModel",
    "problemDescription",
    "partsOrderRequested",
)
CACHED_DATA_KEYS = ("customerProfile", "profileCacheTime", "transactions", "transactionsCacheTime")
# Attributes the store itself owns; everything else in an item travels untouched in ``extra``.
_CORE_ATTRIBUTES = {"phone", "customerId", "currentNode", "cachedData", "sessionData", "lastActivity", "ttl", "version"}
# Bookkeeping the write-behind flusher keeps on the item (its fencing number): never part of a session.
FLUSHED_BY = "flushedBy"
_CORE_ATTRIBUTES.add(FLUSHED_BY)

ERR_CONFLICT = "The session for this phone changed since version {expected}; re-read it and try again."
ERR_EXISTS = "A session for this phone already exists; replace it with If-Match: its version."


class SessionConflict(ApplicationError):
    """A write was conditional on a version that is no longer current: nothing was written."""

    code = "session_conflict"
    http_status = status.HTTP_412_PRECONDITION_FAILED


def session_conflict(session: Session, expected_version: int | None) -> SessionConflict:
    """The conflict a store raises when ``session`` was not at ``expected_version`` (None: a create)."""
    logger.info("session write conflict for %s at version %s", mask_phone(session.phone), expected_version)
    message = ERR_EXISTS if expected_version is None else ERR_CONFLICT.format(expected=expected_version)
    return SessionConflict(message, details={"expectedVersion": expected_version})


@dataclass
class Session:
    phone: str
    customer_id: str | None = None
    current_node: str = MAIN_MENU
    cached_data: dict[str, Any] = field(default_factory=dict)
    session_data: dict[str, Any] = field(default_factory=dict)
    last_activity: str | None = None
    ttl: int | None = None
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        """The seed's camelCase item (what DynamoDB stores and the API returns)."""
        document: dict[str, Any] = {"phone": self.phone}
        if self.customer_id:
            document["customerId"] = self.customer_id
        document.update(
            {
                "currentNode": self.current_node,
                "cachedData": self.cached_data,
                "sessionData": self.session_data,
            }
        )
        if self.last_activity:
            document["lastActivity"] = self.last_activity
        if self.ttl is not None:
            document["ttl"] = self.ttl
        document["version"] = self.version
        document.update(self.extra)
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Session:
        return cls(
            phone=document["phone"],
            customer_id=document.get("customerId"),
            current_node=document.get("currentNode", MAIN_MENU),
            cached_data=dict(document.get("cachedData") or {}),
            session_data=dict(document.get("sessionData") or {}),
            last_activity=document.get("lastActivity"),
            ttl=int(document["ttl"]) if document.get("ttl") is not None else None,
            version=int(document.get("version", 0)),
            extra={k: v for k, v in document.items() if k not in _CORE_ATTRIBUTES},
        )

    def copy(self) -> Session:
        """An independent (deep) copy of the JSON-like data, cheaper than ``copy.deepcopy``.

        A turn no longer copies its session (``session_stamped`` is shallow); this is for callers that
        keep a session while changing another."""
        return Session(
            phone=self.phone,
            customer_id=self.customer_id,
            current_node=self.current_node,
            cached_data=_copied(self.cached_data),
            session_data=_copied(self.session_data),
            last_activity=self.last_activity,
            ttl=self.ttl,
            version=self.version,
            extra=_copied(self.extra),
        )

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return self.ttl is not None and self.ttl <= int((now or timezone.now()).timestamp())


_IMMUTABLE = (str, int, float, bool, Decimal, type(None), bytes)


def _copied(value: Any) -> Any:
    """Deep copy of JSON-like data (dicts, lists, scalars); anything else goes through deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    if kind is list:
        return [_copied(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def session_new(*, phone: str, customer_id: str | None = None) -> Session:
    return Session(phone=phone, customer_id=customer_id, session_data={"partsOrderRequested": False})


def session_stamped(*, session: Session, expected_version: int | None) -> Session:
    """What a save writes: ``session`` at the next version with fresh ``lastActivity``/``ttl``.

    A shallow copy: only those top-level fields change, the maps are shared with ``session`` (a deep
    copy of a 12.5 KB session was a visible share of a webhook turn, docs/BENCHMARKS.md benchmark 3).
    The caller's object keeps its version, so a failed conditional write leaves it as it was.
    """
    stored = dataclasses.replace(session, version=(expected_version or 0) + 1)
    return session_touch(session=stored)


def session_expiry(last_activity: str | None) -> int | None:
    """The ``ttl`` that ``session_touch`` gave a session stamped ``last_activity`` (None if unreadable).

    Redis reads use it instead of fetching the key's expiry, which every write sets to this value.
    """
    if not last_activity:
        return None
    try:
        stamped = dt.datetime.fromisoformat(last_activity)
    except (TypeError, ValueError):
        return None  # a legacy document with an odd stamp: the key's own expiry still applies
    if stamped.tzinfo is None:
        stamped = stamped.replace(tzinfo=dt.UTC)
    return int(stamped.timestamp()) + settings.LIZZY_SESSION_TTL_SECONDS


def session_touch(*, session: Session, now: dt.datetime | None = None) -> Session:
    """Refresh ``lastActivity`` and ``ttl`` (= lastActivity + LIZZY_SESSION_TTL_SECONDS)."""
    now = now or timezone.now()
    session.last_activity = iso_utc(now.replace(microsecond=0))
    session.ttl = int(now.timestamp()) + settings.LIZZY_SESSION_TTL_SECONDS
    return session


class SessionStore(abc.ABC):
    """The contract of every store (docs/SESSION_STORE.md).

    ``load`` returns the live session or None (absent, deleted, past its ``ttl``). ``save`` writes only if
    the stored version is still ``expected_version`` (None: no live session may exist) and returns the
    stored session (next version, fresh ``lastActivity``/``ttl``), else raises ``SessionConflict`` and
    writes nothing. ``delete`` and ``expire`` end a live session, conditionally on ``expected_version``
    when given (``SessionConflict`` otherwise); False when there was no live session. A deleted or
    expired session never comes back, and versions grow across a phone's lifetimes.
    """

    @abc.abstractmethod
    def load(self, phone: str) -> Session | None: ...

    @abc.abstractmethod
    def save(self, session: Session, *, expected_version: int | None) -> Session: ...

    @abc.abstractmethod
    def delete(self, phone: str, *, expected_version: int | None = None) -> bool: ...

    @abc.abstractmethod
    def expire(self, phone: str, *, expected_version: int | None = None) -> bool: ...


class RetiringSessionStore(SessionStore):
    """A store whose delete and expire are one conditional step, ``_retire``, that leaves a tombstone of the
    given kind (``"deleted"`` or ``"expired"``) so the session never comes back."""

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "deleted")

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        return self._retire(phone, expected_version, "expired")

    @abc.abstractmethod
    def _retire(self, phone: str, expected_version: int | None, kind: str) -> bool: ...
