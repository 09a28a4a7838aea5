"""What ops staff do to a live session from the admin: expire it now, reset it to MAIN_MENU, delete it.

Each is conditional on the version the operator saw, so an operator never overwrites a turn the
customer made in the meantime: they get ``SessionConflict`` and look again. Each goes through the
store of the current mode (``get_session_store()``), so a Redis copy (hot tier, mirror, write-behind
value and its dirty marker) is removed or updated together with the DynamoDB item.
"""

from __future__ import annotations

from sessions_app.models import HandoffRequest
from sessions_app.services.sessions import (
    ERR_CONFLICT,
    MAIN_MENU,
    Session,
    SessionConflict,
    get_session_store,
    session_delete,
    session_new,
    session_save,
)


def session_expire(*, phone: str, expected_version: int) -> None:
    """End the session now: DynamoDB keeps the item with ``ttl`` = now (its TTL deletes it later),
    Redis loses its copy. The version is bumped so a writer holding the old one cannot resurrect it.
    """
    if not get_session_store().expire(phone, expected_version=expected_version):
        raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))


def session_reset(*, phone: str, expected_version: int) -> Session:
    """Back to MAIN_MENU with empty session data; the customer and cached profile stay."""
    current = get_session_store().load(phone)
    if current is None or current.version != expected_version:
        raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
    fresh = session_new(phone=phone, customer_id=current.customer_id)
    current.current_node = MAIN_MENU
    current.session_data = fresh.session_data
    waiting = bool(current.extra.get("handoff"))
    if waiting:
        current.extra["handoff"] = False  # back at the menu: nobody is waiting for a person any more
    saved = session_save(session=current, expected_version=expected_version)
    if waiting:
        # ...and the hand-off list must agree: the open request for this phone is closed with the flag.
        HandoffRequest.objects.filter(phone=phone, status="open").update(status="closed")
    return saved


HANDOFF_CLEAR_ATTEMPTS = 5


def session_handoff_clear(*, phone: str) -> bool:
    """Clear the session's ``handoff`` flag (its hand-off was closed), by a conditional save on the version
    read: a turn the customer makes in between wins and the clear is retried on what it wrote. Returns
    whether a flag was cleared; False when there is no session or no flag."""
    for _attempt in range(HANDOFF_CLEAR_ATTEMPTS):
        current = get_session_store().load(phone)
        if current is None or not current.extra.get("handoff"):
            return False
        current.extra["handoff"] = False
        try:
            session_save(session=current, expected_version=current.version)
        except SessionConflict:
            continue
        return True
    raise SessionConflict(ERR_CONFLICT.format(expected=current.version))


def session_remove(*, phone: str, expected_version: int) -> None:
    """Delete the item now (unlike expire, which leaves it to DynamoDB's TTL)."""
    if not session_delete(phone=phone, expected_version=expected_version):
        raise SessionConflict(ERR_CONFLICT.format(expected=expected_version))
