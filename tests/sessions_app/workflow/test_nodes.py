"""Every node and transition of the SMS workflow, through the engine (no HTTP)."""

import re

import pytest

from lizzy.dynamodb import dynamodb_put_item
from lizzy.tables import SESSIONS
from sessions_app.models import Equipment, HandoffRequest, Part, PartsOrder, ServiceRequest, SmsContact
from sessions_app.services.workflow import HELP_TEXT, NODES
from sessions_app.services.workflow.engine import NOTE_NOT_UNDERSTOOD
from sessions_app.services.workflow.nodes import (
    NOTE_HANDOFF_WAITING,
    NOTE_NO_EQUIPMENT,
    NOTE_ORDER_PLACED,
    NOTE_PART_GONE,
    NOTE_PROBLEM_LOGGED,
)
from tests.fixtures.crm import UNKNOWN_PHONE, stored_session

# How to reach each node from a fresh conversation ("hi" opens the main menu).
PATHS = {
    "MAIN_MENU": ["hi"],
    "SELECT_EQUIPMENT": ["hi", "1"],
    "EQUIPMENT_MENU": ["hi", "1", "1"],
    "PARTS_UNIT_TYPE": ["hi", "2"],
    "PARTS_MODEL": ["hi", "2", "1"],
    "PARTS_LIST": ["hi", "2", "1", "1"],
    "PARTS_ORDER_CONFIRM": ["hi", "2", "1", "1", "1"],
    "PROBLEM_DESCRIPTION": ["hi", "3"],
    "TRANSACTIONS": ["hi", "4"],
    "HUMAN_HANDOFF": ["hi", "5"],
    "END": ["hi", "6"],
    "DID_YOU_MEAN": ["hi", "the blade is bent"],
}
TRANSITIONS = [
    # (node, reply, next node)
    ("MAIN_MENU", "1", "SELECT_EQUIPMENT"),
    ("MAIN_MENU", "2", "PARTS_UNIT_TYPE"),
    ("MAIN_MENU", "3", "PROBLEM_DESCRIPTION"),
    ("MAIN_MENU", "4", "TRANSACTIONS"),
    ("MAIN_MENU", "5", "HUMAN_HANDOFF"),
    ("MAIN_MENU", "6", "END"),
    ("SELECT_EQUIPMENT", "1", "EQUIPMENT_MENU"),
    ("EQUIPMENT_MENU", "1", "PARTS_LIST"),
    ("EQUIPMENT_MENU", "2", "PROBLEM_DESCRIPTION"),
    ("EQUIPMENT_MENU", "3", "SELECT_EQUIPMENT"),
    ("EQUIPMENT_MENU", "4", "MAIN_MENU"),
    ("PARTS_UNIT_TYPE", "2", "PARTS_MODEL"),
    ("PARTS_MODEL", "1", "PARTS_LIST"),
    ("PARTS_LIST", "2", "PARTS_ORDER_CONFIRM"),
    ("PARTS_ORDER_CONFIRM", "1", "MAIN_MENU"),
    ("PARTS_ORDER_CONFIRM", "2", "PARTS_LIST"),
    ("PROBLEM_DESCRIPTION", "Engine won't start", "MAIN_MENU"),
    ("HUMAN_HANDOFF", "1", "MAIN_MENU"),
    ("END", "anything", "MAIN_MENU"),
    ("DID_YOU_MEAN", "2", "PARTS_ORDER_CONFIRM"),
]


def reach(sms, node):
    for text in PATHS[node]:
        reply = sms(text)
    assert reply.node == node
    return reply


def test_every_node_has_a_path_and_a_transition_test():
    assert set(PATHS) | {"ONBOARDING"} == set(NODES)
    assert {node for node, _reply, _next in TRANSITIONS} | {"ONBOARDING", "TRANSACTIONS"} == set(NODES)


@pytest.mark.parametrize(("node", "reply", "expected"), TRANSITIONS)
def test_transition(crm, sms, node, reply, expected):
    reach(sms, node)
    result = sms(reply)
    assert result.node == expected
    assert stored_session()["currentNode"] == expected
    assert len(result.reply) <= 1600


@pytest.mark.parametrize("node", sorted(set(PATHS) - {"END", "HUMAN_HANDOFF"}))  # at END any text starts again
def test_an_unrecognised_reply_re_prompts_with_a_hint_and_stays(crm, sms, node):
    before = reach(sms, node)
    result = sms("?")
    assert result.node == node
    assert result.reply.startswith("Sorry, I didn't get that. Reply with ")
    assert before.reply.splitlines()[-1] in result.reply


def test_waiting_for_a_person_free_text_is_not_called_unintelligible(crm, sms):
    reach(sms, "HUMAN_HANDOFF")
    result = sms("my mower won't start, can you help?")
    assert result.node == "HUMAN_HANDOFF"
    assert result.reply.startswith(NOTE_HANDOFF_WAITING)
    assert "will text you shortly" in result.reply
    assert not ServiceRequest.objects.exists()  # explained to a person, not logged by Lizzy


# (node, the hint) for every node: each choice named once, never "1 to 1", never "MENU, or MENU"
HINTS = {
    "MAIN_MENU": 'a number from 1 to 6, or tell me what you need, like "blade for my mower".',
    "SELECT_EQUIPMENT": '1 or MENU, or tell me what you need, like "blade for my mower".',
    "EQUIPMENT_MENU": "a number from 1 to 4 or MENU, or tell me",
    "PARTS_UNIT_TYPE": "1, 2 or MENU, or tell me",
    "PARTS_MODEL": "1, 2 or MENU, or tell me",
    "PARTS_LIST": "1, 2, 3 or MENU, or tell me",
    "PARTS_ORDER_CONFIRM": "1, 2 or MENU, or tell me",
    "PROBLEM_DESCRIPTION": "a short description (at least 3 characters) or MENU.",
    "TRANSACTIONS": "Reply with MENU, or tell me",
    "DID_YOU_MEAN": "1, 2 or MENU, or tell me",
}


@pytest.mark.parametrize(("node", "hint"), sorted(HINTS.items()))
def test_the_hint_names_each_choice_once(crm, sms, node, hint):
    reach(sms, node)
    reply = sms("?" if node == "PROBLEM_DESCRIPTION" else "xyzzy").reply
    first = reply.splitlines()[0]
    assert hint in first
    assert "1 to 1" not in first
    assert first.count("MENU") <= 1


@pytest.mark.parametrize("node", sorted(PATHS))
def test_menu_returns_to_the_main_menu_from_every_node(crm, sms, node):
    reach(sms, node)
    result = sms("menu")
    assert result.node == "MAIN_MENU"
    assert "1) My equipment" in result.reply


@pytest.mark.parametrize("node", ["MAIN_MENU", "PARTS_LIST", "PROBLEM_DESCRIPTION"])
def test_help_answers_and_keeps_the_place(crm, sms, node):
    reach(sms, node)
    result = sms("HELP")
    assert result.reply.startswith(HELP_TEXT)
    assert result.node == node


def test_selecting_equipment_fills_session_data_as_the_seed_shows(crm, sms):
    reach(sms, "EQUIPMENT_MENU")
    data = stored_session()["sessionData"]
    assert data["selectedEquipmentId"] == "EQ123"
    assert data["selectedEquipmentName"] == "Honda HRX217"
    assert data["selectedEquipmentSN"] == "MZCG-1234567"
    assert (data["filterUnitType"], data["filterModel"]) == ("Mowers", "HRX217")


def test_filtering_by_unit_type_then_model_lists_only_matching_parts(crm, sms):
    reply = reach(sms, "PARTS_UNIT_TYPE")
    assert "1) Mowers" in reply.reply
    assert "2) Generators" in reply.reply
    assert "1) EU2200i" in sms("2").reply
    parts = sms("1")
    assert "Oil filter" in parts.reply
    assert "Air filter" not in parts.reply
    data = stored_session()["sessionData"]
    assert (data["filterUnitType"], data["filterModel"]) == ("Generators", "EU2200i")


def test_confirming_an_order_creates_one_parts_order(crm, sms):
    reach(sms, "PARTS_ORDER_CONFIRM")
    result = sms("1")
    order = PartsOrder.objects.get()
    assert result.reply.startswith(NOTE_ORDER_PLACED.format(reference=order.reference))
    assert re.fullmatch(r"P-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", order.reference)
    assert "confirm price" not in result.reply  # the price was on the screen just before
    assert order.customer == crm
    assert order.lines == [{"sku": "HONHRX217-AF", "name": "Honda HRX217 Air filter", "quantity": 1, "price": "12.99"}]
    assert stored_session()["sessionData"]["partsOrderRequested"] is True


def test_declining_an_order_creates_nothing(crm, sms):
    reach(sms, "PARTS_ORDER_CONFIRM")
    assert sms("2").node == "PARTS_LIST"
    assert not PartsOrder.objects.exists()
    assert stored_session()["sessionData"]["partsOrderRequested"] is False


def test_describing_a_problem_creates_a_service_request_for_the_selected_unit(crm, sms):
    reach(sms, "EQUIPMENT_MENU")
    sms("2")
    result = sms("Engine won't start")
    request = ServiceRequest.objects.get()
    assert result.reply.startswith(NOTE_PROBLEM_LOGGED.format(reference=request.reference))
    assert request.reference.startswith("S-")
    assert result.node == "EQUIPMENT_MENU"
    assert (request.problem_description, request.equipment.equipment_id) == ("Engine won't start", "EQ123")
    assert stored_session()["sessionData"]["problemDescription"] == "Engine won't start"


def test_a_too_short_problem_description_is_re_prompted(crm, sms):
    reach(sms, "PROBLEM_DESCRIPTION")
    assert sms("ok").reply.startswith(NOTE_NOT_UNDERSTOOD.split("{")[0])
    assert not ServiceRequest.objects.exists()


def test_recent_transactions_are_listed_newest_first(crm, sms):
    reply = reach(sms, "TRANSACTIONS").reply
    assert reply.index("$42.50 Tune-up") < reply.index("$12.00 Spark plug")


def test_recent_purchases_are_not_numbered_since_nothing_can_be_picked(crm, sms):
    reply = reach(sms, "TRANSACTIONS").reply
    lines = [line for line in reply.splitlines() if "Tune-up" in line or "Spark plug" in line]
    assert lines
    assert all(line.startswith("- ") for line in lines)
    assert "MORE" not in reply  # both fit one page
    assert sms("1").node == "TRANSACTIONS"  # and a number is not taken as a pick


def test_more_is_offered_only_while_the_list_goes_on(crm, sms):
    parts = reach(sms, "PARTS_LIST").reply
    assert "MORE" not in parts
    again = sms("MORE")
    assert again.reply.startswith("That's the whole list.")


def test_the_model_question_names_one_machine(crm, sms):
    assert reach(sms, "PARTS_MODEL").reply.startswith("Which mower model?")


def test_the_customer_is_greeted_once_per_session(crm, sms):
    assert sms("hi").reply.startswith("Hi Jordan! Lizzy here.")
    for text in ["4", "menu", "2", "hello", "1", "MENU"]:
        assert "Hi Jordan" not in sms(text).reply


GREETINGS = ["hi", "Hello!", "hey there", "START", "menu", "Good morning", "hi lizzy"]


@pytest.mark.parametrize(
    ("node", "greeting"), [(node, GREETINGS[index % len(GREETINGS)]) for index, node in enumerate(sorted(PATHS))]
)
def test_a_greeting_goes_home_from_every_node(crm, sms, node, greeting):
    reach(sms, node)
    result = sms(greeting)
    assert result.node == "MAIN_MENU"
    assert "1) My equipment" in result.reply
    assert "didn't get that" not in result.reply
    assert not ServiceRequest.objects.exists()  # "hello" at PROBLEM_DESCRIPTION is not a problem


@pytest.mark.parametrize("greeting", GREETINGS)
def test_every_greeting_word_is_understood(crm, sms, greeting):
    reach(sms, "PARTS_LIST")
    assert sms(greeting).node == "MAIN_MENU"


def test_leaving_a_hand_off_by_any_way_clears_the_flag(crm, sms):
    reach(sms, "HUMAN_HANDOFF")
    assert stored_session()["handoff"] is True
    sms("hi")
    assert stored_session()["handoff"] is False


def test_yes_and_no_answer_the_order_question(crm, sms):
    reach(sms, "PARTS_ORDER_CONFIRM")
    assert sms("no thanks").node == "PARTS_LIST"
    assert not PartsOrder.objects.exists()
    sms("1")
    result = sms("Yes please!")
    assert result.node == "MAIN_MENU"
    assert PartsOrder.objects.get().reference in result.reply


@pytest.mark.parametrize("reply", ["2", " 2 ", "2.", "#2", "2)"])
def test_a_number_with_punctuation_is_still_the_number(crm, sms, reply):
    reach(sms, "MAIN_MENU")
    assert sms(reply).node == "PARTS_UNIT_TYPE"


def test_talking_to_a_human_raises_a_handoff_ops_can_see(crm, sms):
    reach(sms, "HUMAN_HANDOFF")
    handoff = HandoffRequest.objects.get()
    assert (handoff.customer, handoff.node, handoff.status, handoff.phone) == (crm, "MAIN_MENU", "open", crm.phone)
    assert stored_session()["handoff"] is True
    sms("1")
    assert stored_session()["handoff"] is False


def test_my_equipment_without_equipment_explains_and_stays_at_the_menu(crm, sms):
    Equipment.objects.all().delete()
    reach(sms, "MAIN_MENU")
    result = sms("1")
    assert result.node == "MAIN_MENU"
    assert result.reply.startswith(NOTE_NO_EQUIPMENT)


def test_end_closes_the_session_so_the_next_one_is_not_called_expired(crm, sms):
    reach(sms, "END")
    assert SmsContact.objects.get(phone=crm.phone).session_closed is True


def test_an_unknown_number_gets_onboarding_and_a_session_without_customer(crm, sms):
    result = sms("hello", phone=UNKNOWN_PHONE)
    assert result.node == "ONBOARDING"
    assert "isn't linked to a customer account" in result.reply
    item = stored_session(UNKNOWN_PHONE)
    assert "customerId" not in item
    assert item["cachedData"] == {}
    assert sms("menu", phone=UNKNOWN_PHONE).node == "ONBOARDING"
    assert sms("1", phone=UNKNOWN_PHONE).node == "HUMAN_HANDOFF"
    assert HandoffRequest.objects.get().customer is None
    assert sms("1", phone=UNKNOWN_PHONE).node == "ONBOARDING"
    assert sms("2", phone=UNKNOWN_PHONE).node == "END"


def test_an_order_for_a_part_removed_meanwhile_is_not_confirmed(crm, sms):
    reach(sms, "PARTS_ORDER_CONFIRM")
    Part.objects.filter(sku="HONHRX217-AF").delete()
    result = sms("1")
    assert result.node == "PARTS_LIST"
    assert result.reply.startswith(NOTE_PART_GONE)
    assert "reference" not in result.reply
    assert not PartsOrder.objects.exists()


def test_suggestions_written_by_hand_that_cannot_be_acted_on_are_ignored(crm, sms):
    reach(sms, "DID_YOU_MEAN")
    item = stored_session()
    item["sessionData"]["suggestions"] = [{"kind": "node", "label": "x", "node": "NOPE"}, {"label": 5}, "junk"]
    dynamodb_put_item(table=SESSIONS.name, item=item)
    result = sms("1")
    assert result.node == "DID_YOU_MEAN"
    assert "Nothing to choose from" in result.reply
