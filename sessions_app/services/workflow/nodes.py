"""Every node of the SMS conversation, in one table. ``currentNode`` holds one of these names.

Read a row as: what the customer sees on arrival (prompt, list, footer), which replies it accepts,
where each leads, and which side effect it asks for (effects run after the session write wins;
see ``engine.EFFECTS``). MENU, HELP, STOP/START and MORE are handled by the engine for every node.
"""

from __future__ import annotations

from typing import Any

from sessions_app import selectors
from sessions_app.services import crm
from sessions_app.services.workflow import match
from sessions_app.services.workflow.base import (
    HOME,
    LIST_END,
    LIST_START,
    AnyReply,
    FreeText,
    Menu,
    Node,
    Option,
    Pick,
    Target,
    Turn,
)

MAIN_MENU = "MAIN_MENU"
SELECT_EQUIPMENT = "SELECT_EQUIPMENT"
EQUIPMENT_MENU = "EQUIPMENT_MENU"
PARTS_UNIT_TYPE = "PARTS_UNIT_TYPE"
PARTS_MODEL = "PARTS_MODEL"
PARTS_LIST = "PARTS_LIST"
PARTS_ORDER_CONFIRM = "PARTS_ORDER_CONFIRM"
PROBLEM_DESCRIPTION = "PROBLEM_DESCRIPTION"
TRANSACTIONS = "TRANSACTIONS"
HUMAN_HANDOFF = "HUMAN_HANDOFF"
END = "END"
ONBOARDING = "ONBOARDING"
DID_YOU_MEAN = "DID_YOU_MEAN"

PROBLEM_MAX_CHARS = 500  # what the session keeps; the ServiceRequest keeps the whole message
# sessionData keys of a "Did you mean" question (cleared when the customer leaves it)
SUGGESTIONS = "suggestions"
SUGGESTIONS_QUESTION = "suggestionsQuestion"
PENDING_PROBLEM = "pendingProblem"
SELECTED_EQUIPMENT_KEYS = ("selectedEquipmentId", "selectedEquipmentName", "selectedEquipmentSN")

NOTE_NO_EQUIPMENT = "We have no equipment on file for you yet. Reply 2 to find parts or 5 to talk to a person."
NOTE_ORDER_PLACED = "Order placed. Your reference is {reference}. The dealership will text you when it's ready."
NOTE_PROBLEM_LOGGED = (
    "Thanks, we logged the problem. Your reference is {reference}. A technician will text you about next steps."
)
NOTE_PROBLEM_NO_ACCOUNT = (
    "This number isn't linked to a customer account, so nothing was logged. Reply 1 to talk to a person."
)
NOTE_HANDOFF_WAITING = "Lizzy can't pass messages on from here."
NOTE_PART_GONE = "Sorry, that part is no longer in the catalogue, so nothing was ordered."
YES = frozenset({"yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "order it", "yes order it"})
NO = frozenset({"no", "n", "nope", "no thanks", "back", "go back"})


# --- Helpers the rows use -------------------------------------------------------------------------


def _first_name(turn: Turn) -> str:
    profile = turn.profile()
    return f" {profile['name'].split()[0]}" if profile and profile.get("name") else ""


def greeting(turn: Turn) -> str:
    """Said once per session, on its first message."""
    return f"Hi{_first_name(turn)}! Lizzy here."


def _main_prompt(turn: Turn) -> str:
    ask = "Reply with a number, or tell me what you need:"
    return f"{greeting(turn)} {ask}" if turn.first else f"What can I help with? {ask}"


def _equipment(turn: Turn) -> list[dict[str, Any]]:
    profile = turn.profile()
    return profile.get("equipment", []) if profile else []


def _check_equipment(turn: Turn) -> Target:
    if not _equipment(turn):
        turn.note(NOTE_NO_EQUIPMENT)
        return MAIN_MENU
    return None


def _select_equipment(turn: Turn, equipment: dict[str, Any]) -> Target:
    turn.data.update(
        {
            "selectedEquipmentId": equipment["equipmentId"],
            "selectedEquipmentName": equipment["name"],
            "selectedEquipmentSN": equipment["serialNumber"],
            "filterUnitType": equipment["unitType"],
            "filterModel": equipment["model"],
        }
    )
    return EQUIPMENT_MENU


def _unselect_equipment(turn: Turn) -> None:
    for key in SELECTED_EQUIPMENT_KEYS:
        turn.data.pop(key, None)


def _start_parts_search(turn: Turn) -> Target:
    """ "Find parts" browses the catalogue: no unit of the customer's is implied any more."""
    turn.data.pop("filterUnitType", None)
    turn.data.pop("filterModel", None)
    _unselect_equipment(turn)
    return None


def _choose_unit_type(turn: Turn, unit_type: str) -> Target:
    turn.data["filterUnitType"] = unit_type
    turn.data.pop("filterModel", None)
    return PARTS_MODEL


def _choose_model(turn: Turn, model: str) -> Target:
    turn.data["filterModel"] = model
    return PARTS_LIST


# Unit types are plural categories ("Mowers"); a question about one machine wants the singular.
SINGULAR = {
    "Mowers": "mower",
    "Trimmers": "trimmer",
    "Blowers": "blower",
    "Generators": "generator",
    "Chainsaws": "chainsaw",
    "Pressure Washers": "pressure washer",
}


def _model_question(turn: Turn) -> str:
    unit_type = turn.data.get("filterUnitType") or ""
    singular = SINGULAR.get(unit_type)
    if singular:
        return f"Which {singular} model?"
    return f"Which model ({unit_type})?" if unit_type else "Which model?"


def _parts(turn: Turn) -> list[dict[str, Any]]:
    return selectors.parts_for(unit_type=turn.data.get("filterUnitType"), model=turn.data.get("filterModel"))


def _part_label(part: dict[str, Any]) -> str:
    return f"{part['name']} ${part['price']}" + ("" if part["stock"] else " (on order)")


def _choose_part(turn: Turn, part: dict[str, Any]) -> Target:
    turn.data.update(
        {
            "selectedPartSku": part["sku"],
            "selectedPartName": part["name"],
            "selectedPartPrice": part["price"],
            "selectedPartQuantity": int(part.get("quantity") or 1),
        }
    )
    return PARTS_ORDER_CONFIRM


def _quantity(turn: Turn) -> int:
    """sessionData is also written through the PUT API: a quantity that is not a sensible number is 1."""
    try:
        quantity = int(turn.data.get("selectedPartQuantity") or 1)
    except (TypeError, ValueError):
        return 1
    return quantity if 1 <= quantity <= match.MAX_QUANTITY else 1


def _order_question(turn: Turn) -> str:
    data = turn.data
    unit = f" for your {data['selectedEquipmentName']}" if data.get("selectedEquipmentName") else ""
    quantity = _quantity(turn)
    each = " each" if quantity > 1 else ""
    return f"Order {quantity} x {data.get('selectedPartName')} (${data.get('selectedPartPrice')}{each}){unit}?"


def _confirm_order(turn: Turn) -> Target:
    customer_id = turn.session.customer_id
    if not customer_id:
        return HOME
    sku = turn.data.get("selectedPartSku")
    if not sku or selectors.part_get(sku=str(sku)) is None:
        turn.note(NOTE_PART_GONE)  # never "Order placed" for an order that cannot be written
        return PARTS_LIST
    reference = crm.parts_order_reference_new(customer_id=customer_id)
    turn.effect(
        "parts_order",
        customer_id=customer_id,
        sku=sku,
        quantity=_quantity(turn),
        equipment_id=turn.data.get("selectedEquipmentId"),
        reference=reference,
    )
    turn.data["partsOrderRequested"] = True
    turn.note(NOTE_ORDER_PLACED.format(reference=reference))
    return None


def _log_problem(turn: Turn, text: str, equipment_id: str | None) -> None:
    turn.data["problemDescription"] = text[:PROBLEM_MAX_CHARS]
    customer_id = turn.session.customer_id
    if not customer_id:
        turn.note(NOTE_PROBLEM_NO_ACCOUNT)
        return
    reference = crm.service_request_reference_new(customer_id=customer_id)
    turn.effect(
        "service_request",
        customer_id=customer_id,
        equipment_id=equipment_id,
        problem_description=text,
        reference=reference,
    )
    turn.note(NOTE_PROBLEM_LOGGED.format(reference=reference))


def _problem(turn: Turn, text: str) -> Target:
    _log_problem(turn, text, turn.data.get("selectedEquipmentId"))
    return EQUIPMENT_MENU if turn.data.get("selectedEquipmentId") and turn.session.customer_id else HOME


def _handoff(turn: Turn) -> Target:
    turn.effect("handoff", customer_id=turn.session.customer_id, node=turn.session.current_node)
    turn.session.extra["handoff"] = True
    return None


def _back_from_handoff(turn: Turn) -> Target:
    turn.session.extra["handoff"] = False
    return HOME


def _end(turn: Turn) -> Target:
    turn.effect("session_closed")
    return None


def _equipment_label(turn: Turn) -> str:
    name = turn.data.get("selectedEquipmentName")
    return f"{name} (SN {turn.data.get('selectedEquipmentSN')})" if name else "your equipment"


def _transaction_label(item: dict[str, Any]) -> str:
    return f"{item['date']} ${item['amount']} {item['description']}"


# --- Free text (match.py) -------------------------------------------------------------------------


def text_interpret(turn: Turn, text: str) -> Target:
    """Free text at a node that did not accept it: act on one sure reading, ask about several, else None."""
    if not turn.session.customer_id:
        return None
    found = match.message_match(
        text=text,
        catalogue=turn.catalogue(),
        equipment=_equipment(turn),
        selected_equipment_id=turn.data.get("selectedEquipmentId"),
        node_labels={option.target: option.label for option in MAIN_OPTIONS},
    )
    if found is None:
        return None
    if found.note:
        turn.note(found.note)
    if found.sure and len(found.candidates) == 1:
        return _act(turn, found.candidates[0].as_dict(), text)
    turn.data[SUGGESTIONS] = [candidate.as_dict() for candidate in found.candidates]
    turn.data[SUGGESTIONS_QUESTION] = found.question
    if any(candidate.kind == match.PROBLEM for candidate in found.candidates):
        turn.data[PENDING_PROBLEM] = text
    else:
        turn.data.pop(PENDING_PROBLEM, None)
    reset_list(turn)
    return DID_YOU_MEAN


def _owned_unit(turn: Turn, equipment_id: str | None) -> dict[str, Any] | None:
    return next((e for e in _equipment(turn) if equipment_id and e["equipmentId"] == equipment_id), None)


def _act(turn: Turn, suggestion: dict[str, Any], text: str) -> Target:
    kind = suggestion["kind"]
    unit = _owned_unit(turn, suggestion.get("equipmentId"))
    if kind == match.PART:
        if unit:
            _select_equipment(turn, unit)
        else:
            _unselect_equipment(turn)
            turn.data["filterUnitType"] = suggestion["unitType"]
            turn.data["filterModel"] = suggestion.get("model")
        return _choose_part(turn, suggestion)
    if kind == match.MODEL:
        if unit:
            _select_equipment(turn, unit)
        else:
            _unselect_equipment(turn)
            turn.data.update(filterUnitType=suggestion["unitType"], filterModel=suggestion["model"])
        return suggestion["then"]
    if kind == match.UNIT_TYPE:
        _unselect_equipment(turn)
        return _choose_unit_type(turn, suggestion["unitType"])
    if kind == match.PROBLEM:
        _log_problem(turn, text, unit["equipmentId"] if unit else None)
        return HOME
    option = next(option for option in MAIN_OPTIONS if option.target == suggestion["node"])
    redirect = option.action(turn) if option.action else None
    return redirect or option.target


def _choose_suggestion(turn: Turn, suggestion: dict[str, Any]) -> Target:
    return _act(turn, suggestion, str(turn.data.get(PENDING_PROBLEM) or ""))


# What each kind of suggestion needs to be acted on.
SUGGESTION_FIELDS = {
    match.PART: ("sku", "name", "price", "unitType"),
    match.MODEL: ("model", "unitType", "then"),
    match.UNIT_TYPE: ("unitType",),
    match.NODE: ("node",),
    match.PROBLEM: (),
}


def _suggestion_ok(suggestion: Any) -> bool:
    if not isinstance(suggestion, dict) or not isinstance(suggestion.get("label"), str):
        return False
    fields = SUGGESTION_FIELDS.get(suggestion.get("kind"))
    if fields is None or any(suggestion.get(name) is None for name in fields):
        return False
    if suggestion["kind"] == match.NODE:
        return suggestion["node"] in {option.target for option in MAIN_OPTIONS}
    return suggestion["kind"] != match.MODEL or suggestion["then"] in (PARTS_LIST, EQUIPMENT_MENU)


def _suggestions(turn: Turn) -> list[dict[str, Any]]:
    """The pending suggestions; sessionData may also come from the PUT API, so only well-formed ones count."""
    found = turn.data.get(SUGGESTIONS)
    return [suggestion for suggestion in found if _suggestion_ok(suggestion)] if isinstance(found, list) else []


HANDOFF_OPTION = Option(
    "Talk to a person", HUMAN_HANDOFF, _handoff, effect="handoff", aliases=frozenset({"person", "talk to a person"})
)
END_OPTION = Option("End", END, _end, effect="session_closed", aliases=frozenset({"end chat", "bye", "goodbye"}))
MAIN_OPTIONS = (
    Option("My equipment", SELECT_EQUIPMENT, _check_equipment),
    Option("Find parts", PARTS_UNIT_TYPE, _start_parts_search),
    Option("Report a problem", PROBLEM_DESCRIPTION),
    Option("Recent purchases", TRANSACTIONS),
    HANDOFF_OPTION,
    END_OPTION,
)

# --- The table ------------------------------------------------------------------------------------

NODES: dict[str, Node] = {
    node.name: node
    for node in (
        Node(
            MAIN_MENU,
            prompt=_main_prompt,
            accepts=Menu(MAIN_OPTIONS),
            footer="MENU anytime, HELP for help, STOP to opt out.",
            description="The start of every conversation for a known customer (greeted on the first message only).",
            interpret=True,
        ),
        Node(
            SELECT_EQUIPMENT,
            prompt="Which of your units?",
            accepts=Pick(
                items=_equipment,
                label=lambda e: f"{e['name']} (SN {e['serialNumber']})",
                choose=_select_equipment,
                empty=NOTE_NO_EQUIPMENT,
            ),
            description="The customer's equipment from the cached profile; sets selectedEquipment* and the filters.",
            interpret=True,
        ),
        Node(
            EQUIPMENT_MENU,
            prompt=lambda turn: f"{_equipment_label(turn)}:",
            accepts=Menu(
                (
                    Option("Parts for this unit", PARTS_LIST, aliases=frozenset({"parts"})),
                    Option("Report a problem", PROBLEM_DESCRIPTION),
                    Option("Choose another unit", SELECT_EQUIPMENT),
                    Option("Main menu", HOME),
                )
            ),
            description="What to do with the selected unit.",
            interpret=True,
        ),
        Node(
            PARTS_UNIT_TYPE,
            prompt="Parts for which kind of machine?",
            accepts=Pick(items=lambda turn: selectors.part_unit_types(), label=str, choose=_choose_unit_type),
            description="Sets filterUnitType.",
            interpret=True,
        ),
        Node(
            PARTS_MODEL,
            prompt=_model_question,
            accepts=Pick(
                items=lambda turn: selectors.equipment_models_for_unit_type(unit_type=turn.data.get("filterUnitType")),
                label=str,
                choose=_choose_model,
                empty="No models of that kind yet. Reply MENU for the menu.",
            ),
            description="Sets filterModel.",
            interpret=True,
        ),
        Node(
            PARTS_LIST,
            prompt=lambda turn: (
                f"Parts for {turn.data.get('filterModel') or turn.data.get('filterUnitType') or 'you'}:"
            ),
            accepts=Pick(
                items=_parts,
                label=_part_label,
                choose=_choose_part,
                empty="No parts match. Reply MENU for the menu or 5 there to talk to a person.",
            ),
            footer="Reply a number to order, MENU for the menu.",
            description="Parts matching filterUnitType/filterModel, paged to fit one SMS.",
            interpret=True,
        ),
        Node(
            PARTS_ORDER_CONFIRM,
            prompt=_order_question,
            accepts=Menu(
                (
                    Option("Yes, order it", MAIN_MENU, _confirm_order, effect="parts_order", aliases=YES),
                    Option("No, back to the list", PARTS_LIST, aliases=NO),
                )
            ),
            description="Sets partsOrderRequested and creates a PartsOrder (status requested) with a reference.",
            interpret=True,
        ),
        Node(
            PROBLEM_DESCRIPTION,
            prompt=lambda turn: f"Describe the problem with {_equipment_label(turn)} in one message.",
            accepts=FreeText(_problem),
            description="Sets problemDescription and creates a ServiceRequest with a reference.",
        ),
        Node(
            TRANSACTIONS,
            prompt="Your recent purchases:",
            accepts=Pick(items=lambda turn: turn.transactions(), label=_transaction_label, empty="No purchases yet."),
            footer="MENU for the menu.",
            description="From cachedData.transactions (reloaded when older than LIZZY_TRANSACTIONS_CACHE_SECONDS).",
            interpret=True,
        ),
        Node(
            HUMAN_HANDOFF,
            prompt="A person from the dealership will text you shortly.",
            accepts=Menu((Option("Back to Lizzy's menu", HOME, _back_from_handoff, aliases=frozenset({"back"})),)),
            description="Creates a HandoffRequest (open) that ops see in the admin; the session gets handoff=true.",
            not_understood=NOTE_HANDOFF_WAITING,
        ),
        Node(
            END,
            prompt="Thanks for texting Lizzy! Text anything to start again.",
            accepts=AnyReply(HOME),
            description="Conversation closed; the next message starts again at the menu (or does what it asks).",
            interpret=True,
        ),
        Node(
            ONBOARDING,
            prompt=lambda turn: (
                ("Welcome to Lizzy, your equipment dealer's text line. " if turn.first else "")
                + "This number isn't linked to a customer account yet. Reply with a number:"
            ),
            accepts=Menu((HANDOFF_OPTION, END_OPTION)),
            footer="HELP for help, STOP to opt out.",
            description="Home for a number with no customer: the session has no customerId.",
        ),
        Node(
            DID_YOU_MEAN,
            prompt=lambda turn: turn.data.get(SUGGESTIONS_QUESTION) or "Did you mean:",
            accepts=Pick(
                items=_suggestions,
                label=lambda suggestion: suggestion["label"],
                choose=_choose_suggestion,
                empty="Nothing to choose from. Reply MENU for the menu.",
                yes_picks_single=True,
            ),
            footer="Reply a number, or MENU for the menu.",
            description=(
                "Free text with several readings (or one resting on a guess): sessionData.suggestions holds "
                "them until the customer picks one."
            ),
            interpret=True,
        ),
    )
}

HELP_TEXT = (
    'Lizzy help: reply with the number of an option, or say what you need ("blade for my mower", '
    '"engine won\'t start"). MENU: main menu. MORE: next page of a list. STOP: no more texts (START to resume). '
    "Msg&data rates may apply."
)


def node_for(name: str) -> Node:
    """A stored ``currentNode`` that no longer exists (renamed in a deploy) falls back to the menu."""
    return NODES.get(name) or NODES[MAIN_MENU]


def reset_list(turn: Turn) -> None:
    """Arriving at a list from elsewhere shows its first page."""
    turn.data.pop(LIST_START, None)
    turn.data.pop(LIST_END, None)


def node_leave(turn: Turn, target: str) -> None:
    """The session moves from its current node to ``target``: drop what only the old node needed."""
    reset_list(turn)
    left = turn.session.current_node
    if left == DID_YOU_MEAN and target != DID_YOU_MEAN:
        for key in (SUGGESTIONS, SUGGESTIONS_QUESTION, PENDING_PROBLEM):
            turn.data.pop(key, None)
    if left == HUMAN_HANDOFF and target != HUMAN_HANDOFF:
        turn.session.extra["handoff"] = False  # back with Lizzy, however they left
