"""The SMS session store of seed 000: one DynamoDB item per phone in ``LizzySMSSessions``.

The item is exactly the seed's document (``phone``, ``customerId``, ``currentNode``, ``cachedData``,
``sessionData``, ``lastActivity``, ``ttl``) plus ``version`` for optimistic locking. Every save
refreshes ``lastActivity`` and ``ttl``; every read treats an item whose ``ttl`` has passed as absent,
because DynamoDB deletes expired items only "within a few days" and GetItem cannot filter.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone
from rest_framework import status

from lizzy.dynamodb import (
    ConditionFailed,
    dynamodb_get_item,
    dynamodb_put_item,
    dynamodb_scan,
    dynamodb_update_item,
    iso_utc,
)
from lizzy.errors import ApplicationError
from lizzy.phone import mask_phone, phone_from_ref, phone_ref
from lizzy.tables import SESSIONS

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


class SessionStore(Protocol):
    """Where sessions live. The DynamoDB store below is the store of record."""

    def load(self, phone: str) -> Session | None: ...

    def save(self, session: Session, *, expected_version: int | None) -> Session: ...

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool: ...

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool: ...


_LIVE = "(attribute_not_exists(#ttl) OR #ttl > :now)"  # DynamoDB keeps expired items for days: ttl decides


def _now() -> int:
    return int(timezone.now().timestamp())


class DynamoDBSessionStore:
    """One GetItem per read, one conditional PutItem per write.

    Versions are monotonic per phone across lifetimes: a delete leaves a leftover item (phone, a version
    one up, ``ttl`` = now, no content) that TTL removes days later, an expire bumps the version, and a new
    session starts one above any leftover. So an expired leftover is never "newer" than a live session,
    and every conditional write (here, in the mirrors, the flusher and the Redis fills) can compare
    versions across lifetimes. An expired item is invisible to every read and every conditional write.
    """

    def __init__(self, table: str | None = None) -> None:
        self._table = table

    @property
    def table(self) -> str:
        return self._table or SESSIONS.name

    def load(self, phone: str) -> Session | None:
        return self.load_with_floor(phone)[0]

    def load_with_floor(self, phone: str) -> tuple[Session | None, int]:
        """(live session or None, version of whatever item is there: a new lifetime starts above it)."""
        # Strongly consistent: the version we read is the one our conditional write will check.
        item = dynamodb_get_item(table=self.table, key={"phone": phone}, consistent=True)
        if item is None:
            return None, 0
        session = Session.from_document(item)
        return (None if session.is_expired() else session), session.version

    def save(self, session: Session, *, expected_version: int | None, version_floor: int = 0) -> Session:
        if expected_version is None:
            return self._create(session, version_floor)
        stored = session_stamped(session=session, expected_version=expected_version)
        document = stored.to_document()  # dynamodb_put_item refuses an oversize item before the wire
        try:
            dynamodb_put_item(
                table=self.table,
                item=document,
                condition=f"#v = :expected AND {_LIVE}",
                names={"#v": "version", "#ttl": "ttl"},
                values={":expected": expected_version, ":now": _now()},
            )
        except ConditionFailed as exc:
            logger.info("session write conflict for %s at version %s", mask_phone(session.phone), expected_version)
            raise SessionConflict(
                ERR_CONFLICT.format(expected=expected_version), details={"expectedVersion": expected_version}
            ) from exc
        return stored

    def _create(self, session: Session, floor: int) -> Session:
        """New session: nothing live may be there; it starts one above any (expired) leftover's version.

        One PutItem when there is no leftover or ``floor`` is its version (the caller read it); else the
        leftover's version is read and the write tried once more above it.
        """
        for attempt in range(2):
            names = {"#v": "version", "#ttl": "ttl"} | ({"#phone": "phone"} if attempt == 0 else {})
            stored = session_stamped(session=session, expected_version=floor)
            condition = (
                "attribute_not_exists(#phone) OR (#ttl <= :now AND #v <= :floor)"
                if attempt == 0
                else "#ttl <= :now AND #v = :floor"
            )
            try:
                dynamodb_put_item(
                    table=self.table,
                    item=stored.to_document(),
                    condition=condition,
                    names=names,
                    values={":now": _now(), ":floor": floor},
                )
                return stored
            except ConditionFailed:
                found, leftover = self.load_with_floor(session.phone)
                if found is not None or attempt == 1:
                    break
                floor = max(floor, leftover)
        logger.info("session create conflict for %s", mask_phone(session.phone))
        raise SessionConflict(ERR_EXISTS, details={"expectedVersion": None})

    def retire(self, phone: str, *, expected_version: int | None, kind: str) -> int | None:
        """Delete (``kind="deleted"``: the content goes, a leftover stays) or expire a live session.

        Returns the leftover's version (the Redis tombstone carries it), None when there was no live
        session; raises ``SessionConflict`` when ``expected_version`` is not the live version.
        """
        if kind == "expired":
            return self._expire(phone, expected_version)
        for _attempt in range(3):
            version = expected_version
            if version is None:
                found = self.load(phone)
                if found is None:
                    return None
                version = found.version
            leftover = {"phone": phone, "version": version + 1, "ttl": _now()}
            try:
                dynamodb_put_item(
                    table=self.table,
                    item=leftover,
                    condition=f"#v = :expected AND {_LIVE}",
                    names={"#v": "version", "#ttl": "ttl"},
                    values={":expected": version, ":now": leftover["ttl"]},
                )
            except ConditionFailed as exc:
                if expected_version is not None:
                    raise SessionConflict(ERR_CONFLICT.format(expected=expected_version)) from exc
                continue  # changed since we read it: read again
            return version + 1
        return None

    def _expire(self, phone: str, expected_version: int | None) -> int | None:
        now = _now()
        names = {"#ttl": "ttl", "#v": "version"}
        values: dict[str, Any] = {":now": now, ":one": 1}
        if expected_version is None:
            condition = "attribute_exists(#v) AND #ttl > :now"
        else:
            condition = f"#v = :expected AND {_LIVE}"
            values[":expected"] = expected_version
        try:
            updated = dynamodb_update_item(
                table=self.table,
                key={"phone": phone},
                update="SET #ttl = :now, #v = #v + :one",
                condition=condition,
                names=names,
                values=values,
                return_values="UPDATED_NEW",
            )
        except ConditionFailed as exc:
            if expected_version is None:
                return None
            raise SessionConflict(ERR_CONFLICT.format(expected=expected_version)) from exc
        return int((updated or {}).get("version", (expected_version or 0) + 1))

    def delete(self, phone: str, *, expected_version: int | None = None) -> bool:
        """End a session (its content goes; a leftover keeps the version). False when none was live."""
        return self.retire(phone, expected_version=expected_version, kind="deleted") is not None

    def expire(self, phone: str, *, expected_version: int | None = None) -> bool:
        """Set ``ttl`` to now and bump the version: every read treats it as gone, TTL deletes it later.

        The bump means a writer still holding the old version cannot resurrect the session. Without
        ``expected_version`` (a mirror in another mode) any live item is expired; False when none is.
        """
        return self.retire(phone, expected_version=expected_version, kind="expired") is not None


def get_session_store() -> SessionStore:
    """The store of the current mode (docs/SESSION_STORE.md); the mode is cached in-process for seconds."""
    from sessions_app.services.session_stores import store_for_mode
    from sessions_app.services.store_modes import store_mode_current

    return store_for_mode(store_mode_current())


def session_save(*, session: Session, expected_version: int | None) -> Session:
    """Write ``session`` if the stored version is still ``expected_version`` (None: must not exist).

    Returns the stored session (new version, fresh ``lastActivity``/``ttl``); raises
    ``SessionConflict`` when another writer got there first, ``ItemTooLarge`` before any write
    when the item would exceed 400 KB.
    """
    return get_session_store().save(session, expected_version=expected_version)


def session_delete(*, phone: str, expected_version: int | None = None) -> bool:
    """End a session. False when there was no live session."""
    return get_session_store().delete(phone, expected_version=expected_version)


def session_list(
    *,
    node: str | None = None,
    known_customer: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
    table: str | None = None,
) -> tuple[list[Session], str | None]:
    """Live sessions (optionally at one node, with or without a customer), one page.

    The cursor is an opaque LastEvaluatedKey. A Scan with a filter: fine for an ops listing, never on
    the request path of the webhook.
    """
    table = table or SESSIONS.name
    names = {"#ttl": "ttl"}
    values: dict[str, Any] = {":now": int(timezone.now().timestamp())}
    expression = "#ttl > :now"
    if node:
        names["#node"] = "currentNode"
        values[":node"] = node
        expression += " AND #node = :node"
    if known_customer is not None:
        names["#customer"] = "customerId"
        expression += f" AND {'attribute_exists' if known_customer else 'attribute_not_exists'}(#customer)"
    # The cursor is the last phone returned, sealed (phone_ref): a next link must not carry the number.
    start_key = {"phone": phone_from_ref(cursor)} if cursor else None
    found: list[Session] = []
    while True:
        page = dynamodb_scan(
            table=table,
            filter_expression=expression,
            names=names,
            values=values,
            start_key=start_key,
            limit=max(limit, 100),
        )
        for item in page.items:
            found.append(Session.from_document(item))
            if len(found) == limit:
                # Resume after the last item we return, not after the page: nothing is skipped.
                more = page.last_key is not None or item is not page.items[-1]
                return found, phone_ref(item["phone"]) if more else None
        if not page.last_key:
            return found, None
        start_key = page.last_key
