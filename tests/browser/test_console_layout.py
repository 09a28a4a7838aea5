"""The console read at a glance, measured in a real browser (issue 16, "The ops console at 3 a.m.").

Each test measures what a person would notice: headers on one line, panels using the admin's width, a
conversation that fits its box, two filter buttons that look alike, a calm note where nothing is wrong.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from lizzy.phone import phone_ref
from lizzy.roles import OPERATOR_GROUP, VIEWER_GROUP, roles_ensure
from tests.browser.conftest import WAIT_SECONDS
from tests.fixtures.crm import SEED_PHONE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]
PASSWORD = "browser-test-password-42"
WINDOW = (1280, 900)
LONG_QUESTION = "Hi, my HRX217 makes a grinding noise when the blade engages and then stalls, can someone call me?"


@pytest.fixture
def staff(db):
    roles_ensure()
    users = get_user_model().objects
    for name, group in (("ops-operator", OPERATOR_GROUP), ("ops-viewer", VIEWER_GROUP)):
        user = users.create_user(username=name, password=PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=group))


def sign_in(browser, live_server, username):
    browser.set_window_size(*WINDOW)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "lizzy-dashboard")))


def line_height(browser, element) -> float:
    style = browser.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.lineHeight, s.fontSize];", element
    )
    line, font = style
    return float(line.removesuffix("px")) if line.endswith("px") else 1.5 * float(font.removesuffix("px"))


def test_dashboard_uses_the_admin_width_and_headers_stay_on_one_line(browser, live_server, staff, crm, sms):
    sms("hi")
    sign_in(browser, live_server, "ops-operator")
    dashboard = browser.find_element(By.ID, "lizzy-dashboard")
    # the admin's width (1280 px window minus the sidebar), not dashboard.css's 600 px column
    assert dashboard.size["width"] > 800, dashboard.size
    headers = browser.find_elements(By.CSS_SELECTOR, "#lizzy-dashboard .module table th")
    assert headers
    for header in headers:
        if header.text.strip():
            assert header.size["height"] < 2 * line_height(browser, header) + 12, (header.text, header.size)
    # several panels side by side, so the app list is not pushed far down
    panels = browser.find_elements(By.CSS_SELECTOR, "#lizzy-dashboard > .module")
    first_row = [panel for panel in panels if panel.location["y"] == panels[0].location["y"]]
    assert len(first_row) >= 2, [panel.location for panel in panels]


def _conversation(crm, sms):
    sms("hi")
    sms(LONG_QUESTION)  # free text at the menu
    sms("menu")
    sms("5")  # talk to a person


def test_an_operator_reads_the_question_and_the_conversation_fits_its_box(browser, live_server, staff, crm, sms):
    _conversation(crm, sms)
    sign_in(browser, live_server, "ops-operator")
    browser.get(f"{live_server.url}/admin/ops/sessions/{phone_ref(SEED_PHONE)}/")
    table = browser.find_element(By.ID, "conversation")
    assert LONG_QUESTION in table.text
    assert "waiting for a person" in browser.find_element(By.ID, "session-node").text
    # the table fits its fieldset: no horizontal scrollbar, no reply cut off
    box = browser.find_element(By.CSS_SELECTOR, "#conversation").find_element(By.XPATH, "..")
    fits = browser.execute_script(
        "const t = arguments[0], b = arguments[1];"
        "return [t.scrollWidth, b.clientWidth, document.documentElement.scrollWidth, window.innerWidth];",
        table,
        box,
    )
    assert fits[0] <= fits[1] + 1, fits
    assert fits[2] <= fits[3], fits
    # the Session block has the admin's form look: labels in a column beside their values
    labels = browser.find_elements(By.CSS_SELECTOR, "#session-block label")
    values = browser.find_elements(By.CSS_SELECTOR, "#session-block .readonly")
    assert labels[0].location["y"] == pytest.approx(values[0].location["y"], abs=6)
    assert values[0].location["x"] > labels[0].location["x"] + 100


def test_a_viewer_sees_the_conversation_with_the_customers_words_masked(browser, live_server, staff, crm, sms):
    _conversation(crm, sms)
    sign_in(browser, live_server, "ops-viewer")
    browser.get(f"{live_server.url}/admin/ops/sessions/{phone_ref(SEED_PHONE)}/")
    table = browser.find_element(By.ID, "conversation")
    assert "grinding" not in table.text
    assert f"({len(LONG_QUESTION)} characters)" in table.text
    assert browser.find_element(By.ID, "conversation-masked-note").is_displayed()
    assert SEED_PHONE.removeprefix("+") not in browser.current_url


def test_cached_entries_without_redis_is_a_calm_note_and_the_filters_look_alike(
    browser, live_server, staff, settings, dynamodb
):
    settings.REDIS_URL = None
    settings.LIZZY_SESSION_REDIS_URL = None
    sign_in(browser, live_server, "ops-operator")
    browser.get(f"{live_server.url}/admin/ops/cache/")
    note = browser.find_element(By.ID, "redis-info")
    assert "Redis is not configured" in note.text
    assert browser.find_elements(By.CSS_SELECTOR, "#redis-entries .errornote") == []
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", note)
    error_colour = browser.execute_script(
        "const p = document.createElement('p'); p.className = 'errornote'; document.body.appendChild(p);"
        "const c = getComputedStyle(p).color; p.remove(); return c;"
    )
    assert colour != error_colour
    look = (
        "const s = getComputedStyle(arguments[0]);"
        "return [s.backgroundColor, s.color, s.borderTopColor, s.borderTopWidth, s.paddingTop, s.fontSize];"
    )
    redis_button = browser.execute_script(look, browser.find_element(By.ID, "redis-filter"))
    dynamodb_button = browser.execute_script(look, browser.find_element(By.ID, "dynamodb-filter"))
    assert redis_button == dynamodb_button


@pytest.fixture
def migrated_plan(dynamodb, settings, tmp_path):
    """A plan backfilled in 4 segments of one table, then validated."""
    import sqlite3

    from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
    from migration_app.services.runs import run_create, run_execute
    from migration_app.services.validation import plan_validate
    from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

    settings.LIZZY_BACKUP_DIR = str(tmp_path / "backups")
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(THINGS_DDL)
        connection.executemany(
            "INSERT INTO things (id, name, price, active, updated_at, tags) VALUES (?, ?, ?, ?, ?, ?)",
            [tuple(row.values()) for row in things_rows(200)],
        )
    plan = plan_save(name="things", source_url=f"sqlite:///{path}", mapping=things_mapping())
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run_execute(run=run_create(context=context, segments=4), context=context)
    plan_validate(plan=plan, mode="full")
    return plan


def test_a_plan_reads_as_its_tables_and_shows_segments_on_demand(browser, live_server, staff, migrated_plan):
    sign_in(browser, live_server, "ops-operator")
    browser.get(f"{live_server.url}/admin/migration_app/migrationplan/")
    row = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr")
    # the list: the total and one line per table; the 4 segment bars stay folded
    assert len(row.find_elements(By.CSS_SELECTOR, "details.run-table")) == 1
    assert [bar.is_displayed() for bar in row.find_elements(By.CSS_SELECTOR, "progress.run-segment")] == [False] * 4
    assert "4/4 segments done" in row.text
    browser.get(f"{live_server.url}/admin/migration_app/migrationplan/{migrated_plan.pk}/change/")
    table = browser.find_element(By.CSS_SELECTOR, "#run-tables details.run-table")
    segments = table.find_elements(By.CSS_SELECTOR, "progress.run-segment")
    assert len(segments) == 4
    assert not any(bar.is_displayed() for bar in segments)
    # when the reader opens the table, its segments show, and stay open across the page's polls
    table.find_element(By.TAG_NAME, "summary").click()
    assert all(bar.is_displayed() for bar in table.find_elements(By.CSS_SELECTOR, "progress.run-segment"))
    browser.execute_script("document.querySelector('#run-tables details.run-table').dataset.before = '1';")
    redrawn = WebDriverWait(browser, WAIT_SECONDS).until(  # the next poll draws the tables again
        lambda b: b.execute_script(
            "const d = document.querySelector('#run-tables details.run-table');"
            "return d && !d.dataset.before ? d : null;"
        )
    )
    assert redrawn.get_attribute("open") is not None
    # the mapping reads as indented JSON, and no field edits it
    mapping = browser.find_element(By.ID, "plan-mapping")
    assert mapping.text.count("\n") > 5
    assert browser.find_elements(By.NAME, "mapping") == []
