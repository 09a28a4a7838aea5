"""Issue 16, "mixed timestamp formats": every time a console page shows is ``2026-12-01 14:05:09`` (UTC, the
admin's DATETIME_FORMAT from lizzy/formats), never the raw ISO 8601 strings that documents store."""

from __future__ import annotations

import datetime as dt
import re

from lizzy.formats import console_timestamp
from lizzy.phone import phone_ref
from sessions_app.services.sessions import Session, session_new, session_save
from tests.sessions_app.factories import SEED_PHONE

RAW_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
CONSOLE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _visible(html: str) -> str:
    """The page without its JSON blocks (the stored documents, shown as stored) and attributes."""
    return re.sub(r"<pre[^>]*>.*?</pre>|<script.*?</script>|\w+=\"[^\"]*\"", "", html, flags=re.S)


def test_console_timestamp_reads_one_way():
    assert console_timestamp("2026-12-01T14:05:09.123Z") == "2026-12-01 14:05:09"
    assert console_timestamp("2026-12-01T15:05:09+01:00") == "2026-12-01 14:05:09"
    assert console_timestamp(dt.datetime(2026, 12, 1, 14, 5, 9, tzinfo=dt.UTC)) == "2026-12-01 14:05:09"
    assert console_timestamp(dt.datetime(2026, 12, 1, 14, 5, 9)) == "2026-12-01 14:05:09"  # naive: UTC
    assert console_timestamp(None) == "-"
    assert console_timestamp("") == "-"
    assert console_timestamp("soon") == "soon"  # not a time: shown as it is, never a 500


def test_live_session_pages_show_console_timestamps(dynamodb, ops_admin_client):
    from sessions_app.services.workflow.engine import TurnLog, turn_log_write

    log = Session(phone=SEED_PHONE)
    history = [{"at": "2026-11-22T01:00:00Z", "sid": "SMa1", "from": "MAIN_MENU", "to": "PROBLEM", "inLen": 21}]
    turn_log_write(log, TurnLog(history, [{"sid": "SMa1", "reply": "Which unit?"}]))
    session = session_new(phone=SEED_PHONE)
    session.extra.update(log.extra)
    session_save(session=session, expected_version=None)

    listed = ops_admin_client.get("/admin/ops/sessions/").content.decode()
    assert RAW_ISO.findall(_visible(listed)) == []
    assert re.search(r'<td class="field-last-activity">' + CONSOLE.pattern + "</td>", listed)

    detail = _visible(ops_admin_client.get(f"/admin/ops/sessions/{phone_ref(SEED_PHONE)}/").content.decode())
    assert RAW_ISO.findall(detail) == []
    assert "2026-11-22 01:00:00" in detail


def test_store_health_shows_the_last_flush_in_console_time(monkeypatch):
    from sessions_app import admin as sessions_admin
    from sessions_app.models import SessionStoreSetting

    monkeypatch.setattr(sessions_admin, "flush_last", lambda: {"finishedAt": "2026-12-01T14:05:09.5Z", "written": 3})
    monkeypatch.setattr(
        sessions_admin, "flush_backlog", lambda: type("Backlog", (), {"size": 0, "oldest_age_seconds": None})()
    )
    monkeypatch.setattr(sessions_admin, "shadow_read_stats", lambda: {"window_seconds": 60, "divergences": 0})
    model_admin = sessions_admin.SessionStoreSettingAdmin(SessionStoreSetting, sessions_admin.admin.site)
    shown = str(model_admin.store_health(SessionStoreSetting()))
    assert "last flush 2026-12-01 14:05:09 wrote 3" in shown
