"""A tour of the console's main pages in a real browser, as docs/OPERATIONS.md shows them.

Each page renders for an operator with real content (a live session with a conversation, a migrated and
validated plan, cached entries, the cost page). With ``LIZZY_SCREENSHOTS=1`` (``make screenshots``) the
tour saves each page into docs/img/.
"""

from __future__ import annotations

import sqlite3

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from lizzy.phone import phone_ref
from lizzy.roles import roles_ensure
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from tests.browser.conftest import WAIT_SECONDS, screenshot
from tests.fixtures.crm import SEED_PHONE
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]
PASSWORD = "browser-test-password-42"


@pytest.fixture
def operator(db):
    roles_ensure()
    return get_user_model().objects.create_superuser(username="ops-admin", password=PASSWORD)


@pytest.fixture
def migrated_plan(dynamodb, settings, tmp_path):
    settings.LIZZY_BACKUP_DIR = str(tmp_path / "backups")
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(THINGS_DDL)
        connection.executemany(
            "INSERT INTO things (id, name, price, active, updated_at, tags) VALUES (?, ?, ?, ?, ?, ?)",
            [tuple(row.values()) for row in things_rows(120)],
        )
    plan = plan_save(name="things", source_url=f"sqlite:///{path}", mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context), context=context)
    plan_validate(plan=plan, mode="full")
    return plan


def visit(browser, url: str, heading: str) -> None:
    browser.get(url)
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#content h1")))
    assert heading in browser.find_element(By.CSS_SELECTOR, "#content h1").text, browser.title
    assert "Server Error" not in browser.title


def test_the_main_console_pages_render_for_an_operator(browser, live_server, operator, crm, sms, migrated_plan):
    for text in ("hi", "1", "1"):  # a customer's conversation, through the engine
        sms(text)
    base = live_server.url

    browser.get(f"{base}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops-admin")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "lizzy-dashboard")))
    assert browser.find_element(By.ID, "sessions-total").text == "1"
    screenshot(browser, "console-dashboard")

    visit(browser, f"{base}/admin/ops/sessions/", "session")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list .session-row")) == 1
    screenshot(browser, "console-live-sessions")

    visit(browser, f"{base}/admin/ops/sessions/{phone_ref(SEED_PHONE)}/", "")
    assert browser.find_element(By.ID, "session-version").text
    screenshot(browser, "console-session-detail")

    visit(browser, f"{base}/admin/migration_app/migrationplan/", "migration plan")
    screenshot(browser, "console-migration-plans")
    visit(browser, f"{base}/admin/migration_app/migrationplan/{migrated_plan.pk}/change/", "")
    assert browser.find_elements(By.ID, "migration-console")
    screenshot(browser, "console-migration-plan")

    visit(browser, f"{base}/admin/ops/cache/", "")
    screenshot(browser, "console-cached-entries")

    visit(browser, f"{base}/admin/ops/cost/", "")
    screenshot(browser, "console-cost")
