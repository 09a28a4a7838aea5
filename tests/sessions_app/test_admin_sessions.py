import re
import time

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from lizzy.phone import phone_ref
from lizzy.roles import OPERATOR_GROUP
from lizzy.tables import SESSIONS
from sessions_app.admin_sessions import conversation_turns, customer_display, ttl_countdown
from sessions_app.selectors import session_get
from sessions_app.services.sessions import MAIN_MENU, Session, session_new, session_save

pytestmark = pytest.mark.django_db
PHONE = "+12065550100"
LIST_URL = "/admin/ops/sessions/"


def detail_url(phone=PHONE):
    return f"{LIST_URL}{phone_ref(phone)}/"


def make_session(phone=PHONE, *, node=MAIN_MENU, customer_id="CUST123", **extra):
    session = session_new(phone=phone, customer_id=customer_id)
    session.current_node = node
    session.cached_data = {"customerProfile": {"name": "Jordan Rivera", "customerId": customer_id}}
    session.session_data["problemDescription"] = "Engine won't start"
    session.extra.update(extra)
    return session_save(session=session, expected_version=None)


# --- display helpers ---------------------------------------------------------------------------


def test_ttl_countdown_reads_like_a_timer():
    session = Session(phone=PHONE, ttl=1_000_000)
    assert ttl_countdown(session, now=1_000_000 - 724) == "12m 04s"
    assert ttl_countdown(session, now=1_000_000 - 3 * 3600 - 120) == "3h 02m"
    assert ttl_countdown(session, now=1_000_000) == "expired"
    assert ttl_countdown(Session(phone=PHONE), now=0) == "-"


def test_customer_display_names_known_customers_and_escapes_their_names():
    known = Session(phone=PHONE, customer_id="CUST1", cached_data={"customerProfile": {"name": "<b>Jo</b>"}})
    assert str(customer_display(known)) == '&lt;b&gt;Jo&lt;/b&gt; <span class="quiet">(CUST1)</span>'
    assert "unknown" in str(customer_display(Session(phone=PHONE)))


def test_conversation_turns_show_the_history_newest_first_with_the_replies_still_logged():
    from sessions_app.services.workflow.engine import TurnLog, turn_log_write

    assert conversation_turns(Session(phone=PHONE)) == []
    session = Session(phone=PHONE)
    history = [
        {"at": "2026-11-22T01:00:00Z", "sid": "SM1", "from": None, "to": "MAIN_MENU", "inLen": 2, "outLen": 40},
        {"at": "2026-11-22T01:00:05Z", "sid": "SM2", "from": "MAIN_MENU", "to": "HELP", "inLen": 4, "outLen": 12},
    ]
    turn_log_write(session, TurnLog(history, [{"sid": "SM2", "reply": "Help text", "effects": []}]))
    turns = conversation_turns(session)
    assert [turn["sid"] for turn in turns] == ["SM2", "SM1"]
    assert turns[0]["reply"] == "Help text"
    assert turns[1]["reply"] is None
    assert turns[1]["from"] == "(new session)"
    # an item with a log nobody can read still renders
    assert conversation_turns(Session(phone=PHONE, extra={"turnLog": "garbage"})) == []


# --- pages -----------------------------------------------------------------------------------


def test_changelist_shows_masked_phone_customer_node_and_version(dynamodb, ops_admin_client):
    make_session()
    html = ops_admin_client.get(LIST_URL).content.decode()
    assert "+1******0100" in html
    assert PHONE not in html  # neither shown nor in a link
    assert "2065550100" not in html
    assert f'href="{detail_url()}"' in html
    assert "Jordan Rivera" in html
    assert '<td class="field-node">MAIN_MENU</td>' in html
    assert '<td class="field-version">1</td>' in html
    assert "admin/css/changelists.css" in html  # the admin's own look


def test_search_normalises_the_phone(dynamodb, ops_admin_client):
    make_session()
    make_session("+12065550199")
    response = ops_admin_client.post(LIST_URL, {"q": "(206) 555-0100"})  # POST: no phone in the URL
    html = response.content.decode()
    assert html.count('class="session-row"') == 1
    assert "+1******0100" in html
    assert "2065550100" not in re.sub(r'value="[^"]*"', "", html)
    assert 'method="post"' in html
    # a GET with ?q= (an old bookmark) does not search: the number never has to travel in a URL
    assert ops_admin_client.get(LIST_URL, {"q": "(206) 555-0100"}).content.decode().count('class="session-row"') == 2
    bad = ops_admin_client.post(LIST_URL, {"q": "not a phone"})
    assert bad.status_code == 200
    assert "is not a valid phone number" in bad.content.decode()


def test_filters_by_node_and_by_known_customer(dynamodb, ops_admin_client):
    make_session("+12065550101", node="PARTS_LOOKUP")
    make_session("+12065550102", customer_id=None)
    make_session("+12065550103")

    by_node = ops_admin_client.get(LIST_URL, {"node": "PARTS_LOOKUP"}).content.decode()
    assert by_node.count('class="session-row"') == 1
    assert "0101" in by_node
    unknown = ops_admin_client.get(LIST_URL, {"customer": "unknown"}).content.decode()
    assert unknown.count('class="session-row"') == 1
    assert "0102" in unknown
    known = ops_admin_client.get(LIST_URL, {"customer": "known"}).content.decode()
    assert known.count('class="session-row"') == 2


def test_pages_through_the_table_with_a_cursor(dynamodb, ops_admin_client, monkeypatch):
    monkeypatch.setattr("sessions_app.admin_sessions.PAGE_SIZE", 2)
    for suffix in range(5):
        make_session(f"+1206555011{suffix}")
    seen = []
    response = ops_admin_client.get(LIST_URL)
    while True:
        context = response.context
        seen.extend(row["session"].phone for row in context["rows"])
        if not context["next_url"]:
            break
        response = ops_admin_client.get(LIST_URL + context["next_url"])
    assert sorted(seen) == [f"+1206555011{suffix}" for suffix in range(5)]


def test_detail_shows_json_turns_and_no_actions_for_viewers(dynamodb, ops_viewer_client):
    from sessions_app.services.workflow.engine import TurnLog, turn_log_write

    log = Session(phone=PHONE)
    history = [{"at": "2026-11-22T01:00:00Z", "sid": "SMa1", "from": "MAIN_MENU", "to": "PROBLEM", "inLen": 21}]
    turn_log_write(log, TurnLog(history, [{"sid": "SMa1", "reply": "Sorry it won't start! Which unit?"}]))
    make_session(**log.extra)
    response = ops_viewer_client.get(detail_url())
    assert response.status_code == 200
    html = response.content.decode()
    # what the customer wrote is masked for a viewer (no lizzy.read_customer_messages; review 16)
    assert "Engine won&#x27;t start" not in html
    assert "&quot;problemDescription&quot;: &quot;(hidden: needs lizzy.read_customer_messages)&quot;" in html
    assert "Sorry it won&#x27;t start! Which unit?" in html
    assert "MAIN_MENU → PROBLEM" in html
    assert 'id="session-actions"' not in html
    assert 'id="presence"' in html


def test_viewers_cannot_run_actions(dynamodb, ops_viewer_client):
    make_session()
    assert ops_viewer_client.get(detail_url() + "expire/").status_code == 403
    assert ops_viewer_client.post(detail_url() + "delete/", {"version": 1}).status_code == 403
    assert session_get(phone=PHONE) is not None
    assert not LogEntry.objects.exists()


def test_non_staff_are_sent_to_the_login_page(dynamodb, client):
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_expire_asks_for_confirmation_then_expires_and_logs_who(dynamodb, ops_admin_client, ops_admin):
    make_session()
    confirm = ops_admin_client.get(detail_url() + "expire/")
    assert confirm.status_code == 200
    assert session_get(phone=PHONE) is not None  # a GET changes nothing

    response = ops_admin_client.post(detail_url() + "expire/", {"version": 1})

    assert response.status_code == 302
    assert session_get(phone=PHONE) is None
    entry = LogEntry.objects.get()
    assert entry.user == ops_admin
    assert entry.action_flag == CHANGE
    assert entry.object_repr == "Session +1******0100"
    assert "Expired" in entry.change_message
    assert (timezone.now() - entry.action_time).total_seconds() < 60


def test_reset_returns_to_main_menu_and_keeps_the_customer(dynamodb, ops_admin_client):
    make_session(node="PARTS_LOOKUP")
    ops_admin_client.post(detail_url() + "reset/", {"version": 1})
    session = session_get(phone=PHONE)
    assert session.current_node == MAIN_MENU
    assert session.customer_id == "CUST123"
    assert "problemDescription" not in session.session_data
    assert session.version == 2
    assert LogEntry.objects.get().action_flag == CHANGE


def test_delete_removes_the_item(dynamodb, ops_admin_client):
    from lizzy.dynamodb import dynamodb_get_item

    make_session()
    ops_admin_client.post(detail_url() + "delete/", {"version": 1})
    # what stays is a leftover without content that TTL removes (versions stay monotonic across lifetimes)
    leftover = dynamodb_get_item(table=SESSIONS.name, key={"phone": PHONE})
    assert leftover is None or (leftover["ttl"] <= int(time.time()) and "sessionData" not in leftover)
    assert LogEntry.objects.get().action_flag == DELETION


def test_an_action_on_a_stale_version_changes_nothing_and_says_why(dynamodb, ops_admin_client):
    make_session()
    response = ops_admin_client.post(detail_url() + "expire/", {"version": 7}, follow=True)
    assert "changed since version 7" in response.content.decode()
    assert session_get(phone=PHONE).version == 1
    assert not LogEntry.objects.exists()


# --- opaque links and what the customer wrote (issue 16) -------------------------------------------


def test_a_link_by_phone_or_a_forged_reference_is_a_404(dynamodb, ops_admin_client):
    make_session()
    assert ops_admin_client.get(detail_url()).status_code == 200
    forged = phone_ref(PHONE)[:-3] + ("AAA" if not phone_ref(PHONE).endswith("AAA") else "BBB")
    for bad in ("%2B12065550100", "+12065550100", "12065550100", forged, "x" * 200):
        assert ops_admin_client.get(f"{LIST_URL}{bad}/").status_code == 404, bad
        assert ops_admin_client.get(f"{LIST_URL}{bad}/expire/").status_code == 404, bad


def test_a_reference_is_stable_and_names_one_phone():
    refs = {phone_ref(f"+1206555{n:04d}") for n in range(200)}
    assert len(refs) == 200
    assert phone_ref(PHONE) == phone_ref(PHONE)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", ref) and "2065550" not in ref for ref in refs)


def test_a_reference_from_another_installation_is_refused(settings):
    from lizzy.errors import ApplicationError
    from lizzy.phone import phone_from_ref

    ref = phone_ref(PHONE)
    assert phone_from_ref(ref) == PHONE
    settings.SECRET_KEY = "another-installation-" + "k" * 40
    with pytest.raises(ApplicationError):
        phone_from_ref(ref)


def _conversation(session_phone=PHONE):
    from sessions_app.services.workflow.engine import TurnLog, turn_log_write

    log = Session(phone=session_phone)
    history = [
        {
            "at": "2026-11-22T01:00:00Z",
            "sid": "SMa1",
            "from": "MAIN_MENU",
            "to": "HUMAN_HANDOFF",
            "inLen": 23,
            "in": "my card is 4111 and <b>",
        },
        {"at": "2026-11-22T01:00:09Z", "sid": "SMa2", "from": "HUMAN_HANDOFF", "to": "HUMAN_HANDOFF", "inLen": 9},
    ]
    turn_log_write(log, TurnLog(history, [{"sid": "SMa1", "reply": "A person will text you. " + "long " * 300}]))
    return make_session(node="HUMAN_HANDOFF", handoff=True, **log.extra)


@pytest.fixture
def operator_client(db):
    user = get_user_model().objects.create_user(username="ops-operator", password="pw-operator-42", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATOR_GROUP))
    client = Client()
    client.force_login(user)
    return client


def test_operators_read_what_the_customer_wrote(dynamodb, operator_client):
    _conversation()
    html = operator_client.get(detail_url()).content.decode()
    assert "my card is 4111 and &lt;b&gt;" in html  # shown, and escaped
    assert "(9 characters; not kept for older turns)" in html
    assert 'id="conversation-masked-note"' not in html
    assert 'id="session-handoff"' in html


def test_viewers_see_that_the_customer_wrote_something_but_not_what(dynamodb, ops_viewer_client):
    _conversation()
    html = ops_viewer_client.get(detail_url()).content.decode()
    assert "4111" not in html
    assert "my card" not in html
    assert "(23 characters)" in html
    assert 'id="conversation-masked-note"' in html
    assert "A person will text you." in html  # Lizzy's own replies are not the customer's words


def test_the_session_page_uses_the_admin_form_styles_and_wraps_the_conversation(dynamodb, ops_viewer_client):
    _conversation()
    html = ops_viewer_client.get(detail_url()).content.decode()
    assert "admin/css/forms.css" in html
    assert 'class="flex-container"><label>Phone:</label>' in html
    assert "table-layout: fixed" in html
    assert "long long" in html  # the whole reply, wrapped, not cut at 400 characters


def test_reset_from_the_console_clears_a_waiting_handoff(dynamodb, ops_admin_client):
    session = make_session(node="HUMAN_HANDOFF", handoff=True)
    response = ops_admin_client.post(detail_url() + "reset/", {"version": session.version})
    assert response.status_code == 302
    after = session_get(phone=PHONE)
    assert (after.current_node, after.extra["handoff"]) == (MAIN_MENU, False)
