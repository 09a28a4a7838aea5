"""``dynamodb_only``: one DynamoDB item per phone in ``LizzySMSSessions``, the store of record.

DynamoDB deletes expired items only "within a few days" and GetItem cannot filter, so every read treats
an item whose ``ttl`` has passed as absent, and every conditional write treats it as gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.utils import timezone

from lizzy import metrics
from lizzy.dynamodb import ConditionFailed, DynamoDBError, dynamodb_get_item, dynamodb_put_item, dynamodb_update_item
from lizzy.errors import ServiceUnavailable
from lizzy.phone import mask_phone
from lizzy.tables import SESSIONS
from sessions_app.services.store.base import (
    ERR_CONFLICT,
    ERR_EXISTS,
    Session,
    SessionConflict,
    SessionStore,
    session_stamped,
)
from sessions_app.services.store.timing import timed

logger = logging.getLogger(__name__)

_LIVE = "(attribute_not_exists(#ttl) OR #ttl > :now)"
_NAMES = {"#phone": "phone", "#v": "version", "#ttl": "ttl"}  # DynamoDB keeps expired items for days: ttl decides


def _now() -> int:
    return int(timezone.now().timestamp())


class DynamoDBSessionStore(SessionStore):
    """One GetItem per read, one conditional PutItem per write.

    Versions are monotonic per phone across lifetimes: a delete leaves a leftover item (phone, a version
    one up, ``ttl`` = now, no content) that TTL removes days later, an expire bumps the version, and a new
    session starts one above any leftover. So an expired leftover is never "newer" than a live session,
    and every conditional write (here, in the mirrors, the flusher and the Redis fills) can compare
    versions across lifetimes. An expired item is invisible to every read and every conditional write.
    """

    def __init__(self, table: str | None = None) -> None:
        self._table = table
        # The leftover this thread's last read found (phone, version): the create that usually follows
        # (a returning customer's first turn) starts above it in one PutItem instead of a refused PutItem,
        # a GetItem and a second PutItem. Only a hint: the create's condition still checks the version.
        self._seen = threading.local()

    @property
    def table(self) -> str:
        return self._table or SESSIONS.name

    def load(self, phone: str) -> Session | None:
        return self.load_with_floor(phone)[0]

    def load_with_floor(self, phone: str) -> tuple[Session | None, int]:
        """(live session or None, version of whatever item is there: a new lifetime starts above it)."""
        # Strongly consistent: the version we read is the one our conditional write will check.
        self._seen.leftover = None  # the hint is this thread's last read only
        item = dynamodb_get_item(table=self.table, key={"phone": phone}, consistent=True)
        if item is None:
            return None, 0
        session = Session.from_document(item)
        if session.is_expired():
            self._seen.leftover = (phone, session.version)
            return None, session.version
        return session, session.version

    def _leftover_hint(self, phone: str) -> int:
        seen, self._seen.leftover = getattr(self._seen, "leftover", None), None
        return seen[1] if seen is not None and seen[0] == phone else 0

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

        One PutItem when there is no leftover, when ``floor`` is its version (the caller read it), or when
        this thread's last read found it (a returning customer's first turn); else the leftover's version is
        read and the write tried once more above it.
        """
        hint = self._leftover_hint(session.phone)
        blind = hint <= floor  # no leftover known beyond the caller's floor: none, or it is the floor
        at = max(floor, hint)
        for attempt in range(2):
            if attempt == 0 and blind:
                condition = "attribute_not_exists(#phone) OR (#ttl <= :now AND #v <= :floor)"
            else:  # exactly the leftover read: an item swept by TTL meanwhile leaves nothing
                condition = "#ttl <= :now AND #v = :floor" if at else "attribute_not_exists(#phone)"
            created = self._put_new(session, at, condition)
            if created is not None:
                return created
            found, leftover = self.load_with_floor(session.phone)
            if found is not None:
                break
            at = max(floor, leftover)  # what is there now (a stale hint is forgotten)
        logger.info("session create conflict for %s", mask_phone(session.phone))
        raise SessionConflict(ERR_EXISTS, details={"expectedVersion": None})

    def _put_new(self, session: Session, floor: int, condition: str) -> Session | None:
        """A new lifetime at ``floor`` + 1 if ``condition`` holds (None when it does not)."""
        stored = session_stamped(session=session, expected_version=floor)
        # DynamoDB refuses names and values the expression does not use.
        names = {name: attr for name, attr in _NAMES.items() if name in condition}
        values = {key: value for key, value in ((":now", _now()), (":floor", floor)) if key in condition}
        try:
            dynamodb_put_item(
                table=self.table,
                item=stored.to_document(),
                condition=condition,
                names=names,
                values=values or None,
            )
        except ConditionFailed:
            return None
        return stored

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


def dynamodb_mirror(store: DynamoDBSessionStore, stored: Session) -> None:
    """Copy a version into DynamoDB unless a newer one is there already (a mirror never goes back)."""
    try:
        with timed("dynamodb", "mirror"):
            dynamodb_put_item(
                table=store.table,
                item=stored.to_document(),
                # An expired leftover (DynamoDB sweeps it days later) is no session: it never wins.
                condition="attribute_not_exists(#phone) OR #ttl <= :now OR #v < :v",
                names={"#phone": "phone", "#v": "version", "#ttl": "ttl"},
                values={":v": stored.version, ":now": int(time.time())},
            )
    except ConditionFailed:
        metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", "newer_present").inc()
    except (DynamoDBError, ServiceUnavailable) as exc:
        metrics.SESSION_MIRROR_ERRORS.labels("dynamodb", exc.code).inc()
        logger.warning("DynamoDB mirror write failed for %s: %s", mask_phone(stored.phone), exc.code)
