"""The engine's promises: one read and one write per turn, replays, retries, caching, bounds, opt-out, expiry."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lizzy.dynamodb import dynamodb_put_item, item_size
from lizzy.tables import SESSIONS
from sessions_app.models import EquipmentModel, Part, PartsOrder, SmsContact, Transaction, UnitType
from sessions_app.services import sessions as session_service
from sessions_app.services.sessions import SessionConflict
from sessions_app.services.workflow import WorkflowBusy, engine
from sessions_app.services.workflow.engine import NOTE_EXPIRED, NOTE_RESUBSCRIBED
from tests.fixtures.crm import SEED_PHONE, stored_session
from tests.fixtures.dynamodb_hooks import record_calls


def logged(item: dict) -> engine.TurnLog:
    return engine.turn_log_read(session_service.Session.from_document(item))


def test_a_turn_costs_one_get_item_and_one_conditional_put_item(crm, sms):
    sms("hi")
    with record_calls() as calls:
        sms("1")
    assert calls == [("GetItem", SESSIONS.name), ("PutItem", SESSIONS.name)]


def test_a_replayed_message_sid_gets_the_same_reply_without_advancing(crm, sms):
    sms("hi")
    first = sms("1", sid="SMretry1")
    item = stored_session()
    with record_calls() as calls:
        again = sms("1", sid="SMretry1")
    assert again.reply == first.reply
    assert again.replayed is True
    assert calls == [("GetItem", SESSIONS.name)]  # de-duplication is inside the session item
    assert stored_session() == item


def test_a_replayed_order_confirmation_does_not_order_twice(crm, sms):
    for text in ["hi", "2", "1", "1", "1"]:
        sms(text)
    sms("1", sid="SMorder")
    sms("1", sid="SMorder")
    assert PartsOrder.objects.count() == 1
    assert stored_session()["turnCount"] == 6


def test_a_replay_heals_an_effect_lost_after_the_session_write(crm, sms, monkeypatch):
    for text in ["hi", "2", "1", "1", "1"]:
        sms(text)
    real = engine.EFFECTS["parts_order"]
    monkeypatch.setitem(engine.EFFECTS, "parts_order", lambda *args: (_ for _ in ()).throw(RuntimeError("crash")))
    sms("1", sid="SMorder")
    assert not PartsOrder.objects.exists()
    monkeypatch.setitem(engine.EFFECTS, "parts_order", real)
    sms("1", sid="SMorder")
    assert PartsOrder.objects.count() == 1


def test_a_conflict_is_retried_by_re_reading_and_re_applying_the_turn(crm, sms, monkeypatch):
    for text in ["hi", "2", "1", "1", "1"]:
        sms(text)
    real_save = engine.session_save
    raced = []

    def save_after_a_competing_message(*, session, expected_version):
        if not raced:
            raced.append(True)
            sms("HELP", sid="SMcompetitor")  # lands first: our write now conflicts
        return real_save(session=session, expected_version=expected_version)

    monkeypatch.setattr(engine, "session_save", save_after_a_competing_message)
    result = sms("1", sid="SMconfirm")
    assert result.attempts == 2
    item = stored_session()
    assert item["turnCount"] == 7
    assert [entry["sid"] for entry in logged(item).history[-2:]] == ["SMcompetitor", "SMconfirm"]
    assert PartsOrder.objects.count() == 1


def test_a_turn_that_keeps_losing_gives_up_with_503_and_writes_nothing(crm, sms, monkeypatch, settings):
    sms("hi")
    settings.LIZZY_WORKFLOW_MAX_ATTEMPTS = 3
    monkeypatch.setattr(engine, "_backoff", lambda attempt: 0)

    def always_conflicts(*, session, expected_version):
        raise SessionConflict("busy")

    monkeypatch.setattr(engine, "session_save", always_conflicts)
    with pytest.raises(WorkflowBusy) as error:
        sms("6")
    assert error.value.http_status == 503
    assert stored_session()["currentNode"] == "MAIN_MENU"
    assert not SmsContact.objects.filter(session_closed=True).exists()


def test_cached_profile_and_transactions_spare_every_crm_query_inside_the_window(crm, sms, settings):
    settings.LIZZY_PROFILE_CACHE_SECONDS = 300
    settings.LIZZY_TRANSACTIONS_CACHE_SECONDS = 300
    sms("hi")
    sms("4")
    cached = stored_session()["cachedData"]
    assert cached["customerProfile"]["name"] == "Jordan Rivera"
    assert cached["transactions"]["items"][0]["description"] == "Tune-up"
    assert cached["profileCacheTime"].endswith("Z")
    assert cached["transactionsCacheTime"].endswith("Z")
    Transaction.objects.create(customer=crm, date=timezone.now(), amount=1, description="New purchase")
    with CaptureQueriesContext(connection) as queries:
        assert sms("menu").reply.startswith("What can I help with?")  # greeted once, on the first message
        sms("1")
        sms("menu")
        reply = sms("4").reply
    assert len(queries) == 0
    assert "New purchase" not in reply  # the cached list, as promised, until the window passes
    assert stored_session()["cachedData"]["profileCacheTime"] == cached["profileCacheTime"]


def test_stale_cache_is_reloaded(crm, sms, settings):
    sms("hi")
    sms("4")
    settings.LIZZY_TRANSACTIONS_CACHE_SECONDS = 0
    settings.LIZZY_PROFILE_CACHE_SECONDS = 0
    Transaction.objects.create(customer=crm, date=timezone.now(), amount=1, description="New purchase")
    crm.name = "Jordan R. Rivera"
    crm.save()
    sms("menu")
    assert "New purchase" in sms("4").reply
    sms("menu")
    sms("1")  # the equipment list needs the profile: reloaded now that it is stale
    assert stored_session()["cachedData"]["customerProfile"]["name"] == "Jordan R. Rivera"


def test_stop_silences_every_reply_until_start_and_outlives_the_session(crm, sms):
    sms("hi")
    assert sms("STOP").reply == ""
    assert SmsContact.objects.get(phone=SEED_PHONE).opted_out is True
    assert sms("1").reply == ""
    assert stored_session()["currentNode"] == "MAIN_MENU"
    session_service.session_delete(phone=SEED_PHONE)  # 15 minutes later: the session is gone
    assert sms("hello").reply == ""
    assert stored_session()["optedOut"] is True
    result = sms("START")
    assert result.reply.startswith(NOTE_RESUBSCRIBED)
    assert result.node == "MAIN_MENU"
    assert SmsContact.objects.get(phone=SEED_PHONE).opted_out is False
    assert sms("1").node == "SELECT_EQUIPMENT"


@pytest.mark.parametrize("word", ["stop", "Stop.", "UNSUBSCRIBE", "cancel", "quit"])
def test_twilio_opt_out_keywords_are_honoured(crm, sms, word):
    sms("hi")
    assert sms(word).reply == ""
    assert SmsContact.objects.get(phone=SEED_PHONE).opted_out is True


def expire_session(phone=SEED_PHONE):
    item = stored_session(phone)
    item["ttl"] = int(timezone.now().timestamp()) - 1
    dynamodb_put_item(table=SESSIONS.name, item=item)


def test_a_session_idle_past_its_ttl_restarts_at_the_menu_with_a_note(crm, sms):
    for text in ["hi", "1", "1"]:
        sms(text)
    expire_session()
    result = sms("2")  # meant for the equipment menu that no longer exists
    assert result.reply.startswith(NOTE_EXPIRED)
    assert result.node == "MAIN_MENU"
    item = stored_session()
    assert item["sessionData"] == {"partsOrderRequested": False}
    assert item["turnCount"] == 1


def test_after_end_a_lapsed_session_is_not_called_expired(crm, sms):
    sms("hi")
    sms("6")
    expire_session()
    assert not sms("hi").reply.startswith(NOTE_EXPIRED)


def test_a_returning_customers_first_turn_costs_one_get_item_and_one_conditional_put_item(crm, sms):
    """The expired leftover's version, read by the turn's GetItem, is what the create starts above."""
    sms("hi")
    sms("1")
    left = stored_session()["version"]
    expire_session()
    with record_calls() as calls:
        result = sms("hi")
    assert calls == [("GetItem", SESSIONS.name), ("PutItem", SESSIONS.name)]
    assert result.node == "MAIN_MENU"
    assert stored_session()["version"] == left + 1


def test_a_first_turn_after_a_delete_costs_one_get_item_and_one_conditional_put_item(crm, sms):
    sms("hi")
    assert session_service.session_delete(phone=SEED_PHONE)  # the content goes, a leftover keeps the version
    left = stored_session()["version"]
    with record_calls() as calls:
        sms("hi")
    assert calls == [("GetItem", SESSIONS.name), ("PutItem", SESSIONS.name)]
    assert stored_session()["version"] == left + 1


def test_a_first_turn_after_the_leftover_moved_on_still_starts_above_it(crm, sms, monkeypatch):
    """The read's version is only a hint: a leftover bumped between the read and the create (another
    writer's end) makes the create read again and start above the newer leftover, never beside it."""
    sms("hi")
    expire_session()
    read = session_service.DynamoDBSessionStore.load_with_floor
    bumps = []

    def read_then_bump(self, phone):
        found = read(self, phone)
        if not bumps:  # once: the turn's own read
            item = stored_session(phone)
            item["version"] += 5
            dynamodb_put_item(table=SESSIONS.name, item=item)
            bumps.append(item["version"])
        return found

    monkeypatch.setattr(session_service.DynamoDBSessionStore, "load_with_floor", read_then_bump)
    with record_calls() as calls:
        sms("hi")
    assert [name for name, _ in calls].count("PutItem") == 3  # the bump, the refused hinted create, the retry
    assert stored_session()["version"] == bumps[0] + 1


def test_history_and_message_log_stay_bounded(crm, sms, settings):
    settings.LIZZY_WORKFLOW_HISTORY_LIMIT = 10
    settings.LIZZY_WORKFLOW_MESSAGE_LOG_LIMIT = 5
    for index in range(14):
        sms("4" if index % 2 else "menu")
    item = stored_session()
    assert item["turnCount"] == 14
    log = logged(item)
    assert len(log.history) == 10
    assert len(log.message_log) == 5
    entry = log.history[-1]
    assert set(entry) == {"at", "sid", "from", "to", "inLen", "in", "outLen"}
    assert (entry["from"], entry["to"], entry["inLen"], entry["in"]) == ("MAIN_MENU", "TRANSACTIONS", 1, "4")


def test_what_the_customer_wrote_is_kept_bounded_and_the_item_stays_small(crm, sms, settings):
    # given a customer sending the longest messages Twilio delivers, each different (compression cannot help)
    import random

    rng = random.Random(16)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    texts = [
        "".join(rng.choice(alphabet) for _ in range(1600)) for _ in range(settings.LIZZY_WORKFLOW_HISTORY_LIMIT + 5)
    ]
    for text in texts:
        sms(text)
    # then each turn keeps the first 320 characters and its full length, and the item stays far below 400 KB
    item = stored_session()
    history = logged(item).history
    assert [entry["in"] for entry in history] == [text[:320] for text in texts][-len(history) :]
    assert {entry["inLen"] for entry in history} == {1600}
    assert item_size(item) < 100 * 1024, item_size(item)


def test_the_item_stays_far_below_400_kb_with_default_bounds_and_longest_replies(crm, sms, settings):
    # given a catalogue whose lists fill whole 1,600-character pages
    model = EquipmentModel.objects.get(name="HRX217")
    for index in range(120):
        part = Part.objects.create(
            sku=f"LONG-{index:03d}",
            name=f"Honda HRX217 extra long part name {index:03d} " + "x" * 40,
            unit_type=UnitType.MOWERS,
            price=Decimal("1.00"),
            stock=1,
        )
        part.compatible_models.add(model)
    sms("hi")
    sms("1")
    sms("1")
    sms("1")
    # when a customer pages through it for longer than both logs hold
    for _ in range(settings.LIZZY_WORKFLOW_HISTORY_LIMIT + 5):
        sms("MORE")
    # then
    size = item_size(stored_session())
    assert size < 100 * 1024, size


def test_the_turn_log_travels_packed_and_keeps_the_item_small(crm, sms):
    # given a conversation longer than both logs hold, answered with full menus
    for index in range(60):
        sms("HELP" if index % 2 else "menu")
    # then the item holds one packed attribute, not the two lists, and stays a few KB
    item = stored_session()
    assert "history" not in item
    assert "messageLog" not in item
    assert isinstance(item["turnLog"], str)
    log = logged(item)
    assert (len(log.history), len(log.message_log)) == (50, 25)
    assert log.message_log[-1]["reply"] == sms("HELP", sid=log.message_log[-1]["sid"]).reply  # a replay
    assert item_size(item) < 4 * 1024, item_size(item)  # unpacked: ~14 KB, 14 write units a turn


def test_a_session_written_before_packing_keeps_its_replays_and_history(crm, sms):
    sms("hi", sid="SMold1")
    item = stored_session()
    legacy_log = logged(item)
    # given the item as the engine wrote it before packing: plain history and messageLog lists
    legacy = {key: value for key, value in item.items() if key != "turnLog"}
    legacy["history"], legacy["messageLog"] = legacy_log.history, legacy_log.message_log
    dynamodb_put_item(table=SESSIONS.name, item=legacy)
    # when a replay and a new message arrive
    assert sms("whatever", sid="SMold1").replayed
    sms("4", sid="SMnew")
    # then the item is packed now, with the old turn kept
    item = stored_session()
    assert "history" not in item
    assert "messageLog" not in item
    assert [entry["sid"] for entry in logged(item).history] == ["SMold1", "SMnew"]


def test_an_unreadable_turn_log_does_not_fail_the_customer(crm, sms):
    sms("hi", sid="SMfirst")
    item = stored_session()
    dynamodb_put_item(table=SESSIONS.name, item={**item, "turnLog": "not base64 zlib!"})
    result = sms("4", sid="SMnext")
    assert result.reply
    assert not result.replayed
    assert [entry["sid"] for entry in logged(stored_session()).history] == ["SMnext"]


def test_paging_shows_every_part_once_and_never_exceeds_1600_characters(crm, sms):
    model = EquipmentModel.objects.get(name="HRX217")
    for index in range(80):
        part = Part.objects.create(
            sku=f"P{index:03d}",
            name=f"Honda HRX217 part number {index:03d} with a long descriptive name",
            unit_type=UnitType.MOWERS,
            price=Decimal("2.50"),
            stock=0,
        )
        part.compatible_models.add(model)
    total = Part.objects.filter(compatible_models=model).count()
    for text in ["hi", "1", "1"]:
        sms(text)
    pages = [sms("1").reply]
    while "Reply MORE for" in pages[-1]:
        pages.append(sms("MORE").reply)
    numbers = []
    for page in pages:
        assert len(page) <= 1600
        numbers += [int(line.split(")")[0]) for line in page.splitlines() if line[:1].isdigit()]
    assert numbers == list(range(1, total + 1))
    assert len(pages) > 1
    # a number from an earlier page still orders that part
    assert sms("2").node == "PARTS_ORDER_CONFIRM"


def test_every_reply_of_a_long_conversation_fits_one_twilio_message(crm, sms):
    for text in ["hi", "1", "1", "2", "x" * 1600, "1", "1", "1", "4", "HELP", "5", "1", "6", "hi"]:
        assert len(sms(text).reply) <= 1600


def test_a_stored_node_that_no_longer_exists_falls_back_to_the_menu(crm, sms):
    sms("hi")
    item = stored_session()
    item["currentNode"] = "RENAMED_NODE"
    dynamodb_put_item(table=SESSIONS.name, item=item)
    assert sms("1").node == "SELECT_EQUIPMENT"


def test_customer_lookup_is_cached_per_session_not_per_turn(crm, sms):
    sms("hi")
    with CaptureQueriesContext(connection) as queries:
        sms("2")
    customer_queries = [q for q in queries if "sessions_app_customer" in q["sql"]]
    assert customer_queries == []
