"""Every node of the SMS conversation, in one table. ``currentNode`` holds one of these names.

Read a row as: what the customer sees on arrival (prompt, list, footer), which replies it accepts,
where each leads, and which side effect it asks for (effects run after the session write wins;
see ``engine.EFFECTS``). MENU, HELP, STOP/START and MORE are handled by the engine for every node.
"""

from __future__ import annotations

from typing import Any

from sessions_app import selectors
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

PROBLEM_MAX_CHARS = 500  # what the session keeps; the ServiceRequest keeps the whole message

NOTE_NO_EQUIPMENT = "We have no equipment on file for you yet. Reply 2 to find parts or 5 to talk to a person."
NOTE_ORDER_PLACED = "Order requested! The dealership will text you to confirm price and pickup."
NOTE_PROBLEM_LOGGED = "Thanks, we logged the problem. A technician will text you about next steps."


# --- Helpers the rows use -------------------------------------------------------------------------


def _first_name(turn: Turn) -> str:
    profile = turn.profile()
    return f" {profile['name'].split()[0]}" if profile and profile.get("name") else ""


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


def _start_parts_search(turn: Turn) -> Target:
    turn.data.pop("filterUnitType", None)
    turn.data.pop("filterModel", None)
    return None


def _choose_unit_type(turn: Turn, unit_type: str) -> Target:
    turn.data["filterUnitType"] = unit_type
    turn.data.pop("filterModel", None)
    return PARTS_MODEL


def _choose_model(turn: Turn, model: str) -> Target:
    turn.data["filterModel"] = model
    return PARTS_LIST


def _parts(turn: Turn) -> list[dict[str, Any]]:
    return selectors.parts_for(unit_type=turn.data.get("filterUnitType"), model=turn.data.get("filterModel"))


def _part_label(part: dict[str, Any]) -> str:
    return f"{part['name']} ${part['price']}" + ("" if part["stock"] else " (on order)")


def _choose_part(turn: Turn, part: dict[str, Any]) -> Target:
    turn.data.update(
        {"selectedPartSku": part["sku"], "selectedPartName": part["name"], "selectedPartPrice": part["price"]}
    )
    return PARTS_ORDER_CONFIRM


def _confirm_order(turn: Turn) -> Target:
    if not turn.session.customer_id:
        return HOME
    turn.effect(
        "parts_order",
        customer_id=turn.session.customer_id,
        sku=turn.data["selectedPartSku"],
        equipment_id=turn.data.get("selectedEquipmentId"),
    )
    turn.data["partsOrderRequested"] = True
    turn.note(NOTE_ORDER_PLACED)
    return None


def _problem(turn: Turn, text: str) -> Target:
    turn.data["problemDescription"] = text[:PROBLEM_MAX_CHARS]
    if turn.session.customer_id:
        turn.effect(
            "service_request",
            customer_id=turn.session.customer_id,
            equipment_id=turn.data.get("selectedEquipmentId"),
            problem_description=text,
        )
    turn.note(NOTE_PROBLEM_LOGGED)
    return EQUIPMENT_MENU if turn.data.get("selectedEquipmentId") else MAIN_MENU


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


HANDOFF_OPTION = Option("Talk to a person", HUMAN_HANDOFF, _handoff, effect="handoff")

# --- The table ------------------------------------------------------------------------------------

NODES: dict[str, Node] = {
    node.name: node
    for node in (
        Node(
            MAIN_MENU,
            prompt=lambda turn: f"Hi{_first_name(turn)}! Lizzy here. Reply with a number:",
            accepts=Menu(
                (
                    Option("My equipment", SELECT_EQUIPMENT, _check_equipment),
                    Option("Find parts", PARTS_UNIT_TYPE, _start_parts_search),
                    Option("Report a problem", PROBLEM_DESCRIPTION),
                    Option("Recent purchases", TRANSACTIONS),
                    HANDOFF_OPTION,
                    Option("End", END, _end, effect="session_closed"),
                )
            ),
            footer="MENU anytime, HELP for help, STOP to opt out.",
            description="The start of every conversation for a known customer.",
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
        ),
        Node(
            EQUIPMENT_MENU,
            prompt=lambda turn: f"{_equipment_label(turn)}:",
            accepts=Menu(
                (
                    Option("Parts for this unit", PARTS_LIST),
                    Option("Report a problem", PROBLEM_DESCRIPTION),
                    Option("Choose another unit", SELECT_EQUIPMENT),
                    Option("Main menu", HOME),
                )
            ),
            description="What to do with the selected unit.",
        ),
        Node(
            PARTS_UNIT_TYPE,
            prompt="Parts for which kind of machine?",
            accepts=Pick(items=lambda turn: selectors.part_unit_types(), label=str, choose=_choose_unit_type),
            description="Sets filterUnitType.",
        ),
        Node(
            PARTS_MODEL,
            prompt=lambda turn: f"Which {turn.data.get('filterUnitType', '')} model?",
            accepts=Pick(
                items=lambda turn: selectors.equipment_models_for_unit_type(unit_type=turn.data.get("filterUnitType")),
                label=str,
                choose=_choose_model,
                empty="No models of that kind yet. Reply MENU for the menu.",
            ),
            description="Sets filterModel.",
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
            footer="Reply a number to order, MORE for more, MENU for the menu.",
            description="Parts matching filterUnitType/filterModel, paged to fit one SMS.",
        ),
        Node(
            PARTS_ORDER_CONFIRM,
            prompt=lambda turn: (
                f"Order 1 x {turn.data.get('selectedPartName')} (${turn.data.get('selectedPartPrice')})"
                + (f" for your {turn.data['selectedEquipmentName']}" if turn.data.get("selectedEquipmentName") else "")
                + "?"
            ),
            accepts=Menu(
                (
                    Option("Yes, order it", MAIN_MENU, _confirm_order, effect="parts_order"),
                    Option("No, back to the list", PARTS_LIST),
                )
            ),
            description="Sets partsOrderRequested and creates a PartsOrder (status requested).",
        ),
        Node(
            PROBLEM_DESCRIPTION,
            prompt=lambda turn: f"Describe the problem with {_equipment_label(turn)} in one message.",
            accepts=FreeText(_problem),
            description="Sets problemDescription and creates a ServiceRequest.",
        ),
        Node(
            TRANSACTIONS,
            prompt="Your recent purchases:",
            accepts=Pick(items=lambda turn: turn.transactions(), label=_transaction_label, empty="No purchases yet."),
            footer="MORE for more, MENU for the menu.",
            description="From cachedData.transactions (reloaded when older than LIZZY_TRANSACTIONS_CACHE_SECONDS).",
        ),
        Node(
            HUMAN_HANDOFF,
            prompt="A person from the dealership will text you shortly.",
            accepts=Menu((Option("Back to Lizzy's menu", HOME, _back_from_handoff),)),
            description="Creates a HandoffRequest (open) that ops see in the admin; the session gets handoff=true.",
        ),
        Node(
            END,
            prompt="Thanks for texting Lizzy! Text anything to start again.",
            accepts=AnyReply(HOME),
            description="Conversation closed; the next message starts again at the menu.",
        ),
        Node(
            ONBOARDING,
            prompt=(
                "Welcome to Lizzy, your equipment dealer's text line. This number isn't linked to a customer "
                "account yet. Reply with a number:"
            ),
            accepts=Menu(
                (
                    Option("Talk to a person", HUMAN_HANDOFF, _handoff, effect="handoff"),
                    Option("End", END, _end, effect="session_closed"),
                )
            ),
            footer="HELP for help, STOP to opt out.",
            description="Home for a number with no customer: the session has no customerId.",
        ),
    )
}

HELP_TEXT = (
    "Lizzy help: reply with the number of an option. MENU: main menu. MORE: next page of a list. "
    "STOP: no more texts (START to resume). Msg&data rates may apply."
)


def node_for(name: str) -> Node:
    """A stored ``currentNode`` that no longer exists (renamed in a deploy) falls back to the menu."""
    return NODES.get(name) or NODES[MAIN_MENU]


def reset_list(turn: Turn) -> None:
    """Arriving at a list from elsewhere shows its first page."""
    turn.data.pop(LIST_START, None)
    turn.data.pop(LIST_END, None)
