"""The free-text matcher on its own (no database): any text at all, and the rules it must keep."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sessions_app.services.demo import MODELS, PARTS
from sessions_app.services.workflow import match

# The demo catalogue, built from demo.py's own tables (the seed writes the same names).
CATALOGUE = match.Catalogue(
    models=[{"name": model, "brand": brand, "unitType": unit} for unit, ms in MODELS.items() for brand, model, _ in ms],
    parts=[
        {
            "sku": f"{model}-{part}",
            "name": f"{brand} {model} {part}",
            "unitType": unit,
            "price": price,
            "stock": 3,
            "models": [model],
        }
        for unit, ms in MODELS.items()
        for brand, model, _ in ms
        for part, price in PARTS[unit]
    ],
)
MOWER = {"equipmentId": "EQ123", "name": "Honda HRX217", "serialNumber": "MZCG-1234567", "unitType": "Mowers"}
MOWER["model"] = "HRX217"
LABELS = {
    "SELECT_EQUIPMENT": "My equipment",
    "PARTS_UNIT_TYPE": "Find parts",
    "PROBLEM_DESCRIPTION": "Report a problem",
    "TRANSACTIONS": "Recent purchases",
    "HUMAN_HANDOFF": "Talk to a person",
    "END": "End",
}
VOCABULARY = sorted(
    {word for part in CATALOGUE.parts for word in match.words(part["name"])}
    | set(match.UNIT_WORDS)
    | {"wont", "start", "leaking", "person", "talk", "to", "my", "for", "a", "the", "parts", "bye", "fix", "2"}
)
ACTS = {"HUMAN_HANDOFF", "END"}


def matched(text: str, equipment=(MOWER,)) -> match.Match | None:
    return match.message_match(text=text, catalogue=CATALOGUE, equipment=equipment, node_labels=LABELS)


messages = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(VOCABULARY), max_size=12).map(" ".join),
    st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=8)), max_size=10).map(" ".join),
)


@settings(max_examples=400, deadline=None)
@given(text=messages, owns=st.booleans())
def test_any_text_gives_a_bounded_json_ready_answer(text, owns):
    found = matched(text, equipment=(MOWER,) if owns else ())
    if found is None:
        return
    assert 1 <= len(found.candidates) <= match.MAX_SUGGESTIONS
    assert not found.sure or len(found.candidates) == 1  # a choice between several is always asked
    json.dumps([candidate.as_dict() for candidate in found.candidates])  # they wait in the session item
    for candidate in found.candidates:
        assert candidate.label
        if candidate.kind == match.PART:
            assert candidate.data["sku"] in {part["sku"] for part in CATALOGUE.parts}
            assert 1 <= candidate.data["quantity"] <= match.MAX_QUANTITY


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=8).map(" ".join))
def test_a_misspelling_never_makes_a_sure_action(text):
    """Whatever a corrected word leads to, an action with an effect on its strength is asked first."""
    typo = " ".join(word[:1] + word[2:3] + word[1:2] + word[3:] if len(word) > 4 else word for word in text.split())
    found = matched(typo)
    if found is None or not found.sure or typo == text:
        return
    only = found.candidates[0]
    if only.kind == match.PROBLEM or (only.kind == match.NODE and only.data["node"] in ACTS):
        # The action must come from words that were typed correctly: either the whole original text leads to it
        # ("bye leaking" is a problem report), or the correctly typed words alone do ("bye laeking": "bye" ends
        # the conversation whatever the misspelt word was).
        exact = " ".join(word for word in typo.split() if word in text.split())
        readings = [matched(text), matched(exact) if exact else None]
        kinds = {candidate.kind for reading in readings if reading is not None for candidate in reading.candidates}
        assert only.kind in kinds, (text, typo, found, readings)


def test_a_model_number_is_matched_exactly_or_only_suggested():
    assert matched("blade for HRX217").candidates[0].data["model"] == "HRX217"
    assert matched("blade for hrx-217").candidates[0].data["model"] == "HRX217"
    near = matched("parts for hrx271")
    assert near.sure is False  # a near miss is a question, not an answer
    assert near.candidates[0].data["model"] == "HRX217"


def test_chain_saw_is_a_machine_not_a_chain():
    found = matched("my chain saw won't start")
    assert [candidate.kind for candidate in found.candidates] == [match.PROBLEM]


def test_numbers_that_are_sizes_are_not_quantities():
    found = matched("18 inch chain for ms 271")
    assert found.candidates[0].data["quantity"] == 1
    assert matched("3 spark plugs for HRX217").candidates[0].data["quantity"] == 3


def test_an_explicit_request_for_a_person_wins_over_the_rest():
    found = matched("talk to a person about my mower that won't start")
    assert [candidate.data.get("node") for candidate in found.candidates] == ["HUMAN_HANDOFF"]
    assert found.sure


def test_a_long_message_is_read_only_as_far_as_a_request_goes():
    words = ["blade"] + ["lorem"] * (match.MAX_WORDS + 40) + ["talk", "to", "a", "person"]
    found = matched(" ".join(words))
    assert [candidate.kind for candidate in found.candidates] == [match.PART]
