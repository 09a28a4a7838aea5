"""The ops console in a real browser: sign in, dashboard, find and expire a session, viewer limits."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from lizzy.phone import phone_ref
from lizzy.roles import VIEWER_GROUP, roles_ensure
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_new, session_save
from tests.browser.conftest import WAIT_SECONDS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]
PASSWORD = "browser-test-password-42"
PHONE = "+12065550100"


@pytest.fixture
def staff(db):
    roles_ensure()  # a transactional test may follow another that flushed the groups
    users = get_user_model().objects
    admin = users.create_superuser(username="ops-admin", password=PASSWORD)
    viewer = users.create_user(username="ops-viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWER_GROUP))
    return {"admin": admin, "viewer": viewer}


def sign_in(browser, live_server, username):
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "lizzy-dashboard")))


def test_sign_in_shows_the_dashboard_with_alarms_and_sessions(browser, live_server, dynamodb, staff):
    session_save(session=session_new(phone=PHONE, customer_id="CUST123"), expected_version=None)

    sign_in(browser, live_server, "ops-admin")

    assert browser.title.startswith("Operations dashboard")
    alarms = browser.find_elements(By.CSS_SELECTOR, "#panel-alarms .alarm-row")
    assert [row.get_attribute("data-alarm") for row in alarms] == [
        "system_errors",
        "user_errors",
        "throttled_requests",
    ]
    assert browser.find_element(By.ID, "sessions-total").text == "1"
    assert browser.find_element(By.ID, "capacity-projected-cost").text.startswith("$")


def test_search_a_session_by_phone_and_expire_it(browser, live_server, dynamodb, staff):
    session_save(session=session_new(phone=PHONE, customer_id="CUST123"), expected_version=None)
    sign_in(browser, live_server, "ops-admin")

    browser.find_element(By.LINK_TEXT, "Live sessions").click()
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("(206) 555-0100")
    search.submit()
    rows = WebDriverWait(browser, WAIT_SECONDS).until(
        ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#result_list .session-row"))
    )
    assert len(rows) == 1
    rows[0].find_element(By.LINK_TEXT, "+1******0100").click()
    browser.find_element(By.CSS_SELECTOR, ".session-action-expire").click()
    browser.find_element(By.ID, "confirm-action").click()

    message = WebDriverWait(browser, WAIT_SECONDS).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success"))
    )
    assert "Expired the session now" in message.text
    assert session_get(phone=PHONE) is None


def test_a_viewer_sees_sessions_but_no_actions(browser, live_server, dynamodb, staff):
    session_save(session=session_new(phone=PHONE), expected_version=None)
    sign_in(browser, live_server, "ops-viewer")

    browser.get(f"{live_server.url}/admin/ops/sessions/{phone_ref(PHONE)}/")
    assert browser.find_element(By.ID, "session-version").text == "1"
    assert browser.find_elements(By.ID, "session-actions") == []

    browser.get(f"{live_server.url}/admin/ops/sessions/{phone_ref(PHONE)}/expire/")
    assert "403" in browser.title or "Forbidden" in browser.page_source
    assert session_get(phone=PHONE) is not None


def test_searching_hand_offs_by_phone_keeps_the_number_out_of_the_address_bar(browser, live_server, staff):
    """The ORM changelist's search box POSTs (with its CSRF token) and lands on ?q=<sealed term>."""
    from sessions_app.models import HandoffRequest

    HandoffRequest.objects.create(phone=PHONE, node="HUMAN_HANDOFF")
    HandoffRequest.objects.create(phone="+14155550100", node="HUMAN_HANDOFF")
    sign_in(browser, live_server, "ops-admin")
    browser.get(f"{live_server.url}/admin/sessions_app/handoffrequest/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys(PHONE)
    search.submit()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.url_contains("q="))
    assert PHONE.lstrip("+") not in browser.current_url
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 1
    assert browser.find_element(By.ID, "searchbar").get_attribute("value") == PHONE
