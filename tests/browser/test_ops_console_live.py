"""The console's live parts in a real browser: migration progress by polling, presence by heartbeat."""

from __future__ import annotations

import sqlite3
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import OperationalError
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lizzy.phone import phone_ref
from lizzy.roles import VIEWER_GROUP, roles_ensure
from migration_app.models import RunStatus
from migration_app.services.plans import plan_save
from migration_app.services.validation import plan_validate
from sessions_app.services.events import presence_touch
from sessions_app.services.sessions import session_new, session_save
from tests.browser.conftest import WAIT_SECONDS
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows
from tests.sessions_app.store.conftest import session_redis  # noqa: F401 - the fixture, for presence

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]
PASSWORD = "browser-test-password-42"
PHONE = "+12065550100"
ROWS = 600  # 12 chunks of 50 (the test settings' chunk size): several polls see it move


@pytest.fixture
def staff(db):
    roles_ensure()
    users = get_user_model().objects
    users.create_superuser(username="ops-admin", password=PASSWORD)
    viewer = users.create_user(username="ops-viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWER_GROUP))


@pytest.fixture
def plan(dynamodb, settings, tmp_path):
    settings.LIZZY_BACKUP_DIR = str(tmp_path / "backups")
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(THINGS_DDL)
        connection.executemany(
            "INSERT INTO things (id, name, price, active, updated_at, tags) VALUES (?, ?, ?, ?, ?, ?)",
            [tuple(row.values()) for row in things_rows(ROWS)],
        )
    return plan_save(name="things", source_url=f"sqlite:///{path}", mapping=things_mapping())


def retry_while_locked(write, attempts=20):
    """The test thread writes while the live server's threads share its in-memory SQLite connection:
    a poll reading the same table at that instant makes SQLite say "table is locked". Try again."""
    for _ in range(attempts - 1):
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    return write()


def sign_in(browser, live_server, username):
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_elements(By.ID, "lizzy-dashboard"))


def test_start_a_migration_and_watch_its_progress_bar_reach_100(browser, live_server, staff, plan, monkeypatch):
    monkeypatch.setattr("migration_app.admin.POLL_MS", 250)
    sign_in(browser, live_server, "ops-admin")
    browser.get(f"{live_server.url}/admin/migration_app/migrationplan/{plan.pk}/change/")
    browser.execute_script("window.lizzyNoReload = true;")

    browser.find_element(By.ID, "action-start").click()

    def finished(b):
        bar = b.find_element(By.ID, "run-progress")
        return bar.get_attribute("max") == str(ROWS) and bar.get_attribute("value") == str(ROWS)

    WebDriverWait(browser, 15).until(finished)
    assert browser.find_element(By.ID, "run-percent").text == "100"
    assert browser.find_element(By.ID, "run-status").text == RunStatus.SUCCEEDED
    assert browser.find_element(By.ID, "console-phase").text == "Backfill"
    assert "Started backfill run #" in browser.find_element(By.ID, "console-message").text
    assert plan.runs.get().items_written == ROWS

    # when something changes elsewhere (a scheduled validation), the open page picks it up by polling
    retry_while_locked(lambda: plan_validate(plan=plan, mode="quick"))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.find_element(By.ID, "console-validation").text.startswith("Last validation: clean")
    )
    assert browser.execute_script("return window.lizzyNoReload === true;")  # updated in place, no reload


def test_a_viewer_cannot_press_the_migration_buttons(browser, live_server, staff, plan):
    sign_in(browser, live_server, "ops-viewer")
    browser.get(f"{live_server.url}/admin/migration_app/migrationplan/{plan.pk}/change/")

    assert browser.find_elements(By.ID, "migration-console")
    assert browser.find_elements(By.ID, "action-start") == []
    assert not plan.runs.exists()


def test_presence_shows_another_viewer_without_a_reload(
    browser,
    live_server,
    staff,
    dynamodb,
    session_redis,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr("sessions_app.admin_sessions.PRESENCE_REFRESH_SECONDS", 0.25)
    session_save(session=session_new(phone=PHONE), expected_version=None)
    sign_in(browser, live_server, "ops-admin")
    browser.get(f"{live_server.url}/admin/ops/sessions/{phone_ref(PHONE)}/")
    assert browser.find_element(By.ID, "presence").text == ""
    browser.execute_script("window.lizzyNoReload = true;")

    presence_touch(phone=PHONE, viewer="ops-colleague")

    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.find_element(By.ID, "presence").text == "Also viewing: ops-colleague"
    )
    assert browser.execute_script("return window.lizzyNoReload === true;")
