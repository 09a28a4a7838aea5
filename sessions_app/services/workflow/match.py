"""Free text at a menu: what a customer typed, matched to parts, models and the actions of the node table.

"blade for my HRX217" names a part kind and a model; "engine won't start" describes a problem; "talk to a
person" names an action. ``message_match`` is pure: it reads only the catalogue and the customer's
equipment it is given (loaded once per turn by the caller) and returns candidates. ``nodes.py`` acts on
one sure candidate and asks "Did you mean…?" for several, or for one that rests on a guess. A wrong action is
worse than "Sorry, I didn't get that", so the rules lean towards asking:

- model numbers match exactly ("HRX 217", "hrx-217"), by a distinctive prefix ("hrx", "eu2200") or by
  a distinctive word ("recycler"); a near miss ("hrx271") is only a suggestion;
- part kinds are the words of the catalogue's part names (minus brand, model and unit-type words), with a
  few synonyms ("string" is line, "gas" is fuel); a misspelt kind ("sprak") is corrected with difflib
  against that vocabulary only, and marks the match unsure;
- a problem is a symptom ("won't start", "leaking", "smoking"), not the word "problem": "I need a repair"
  asks for a description instead of logging one;
- an action or a problem that rests on a corrected word is never taken without asking.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Candidate kinds
PART = "part"  # order this part (goes to the order confirmation, which asks again)
MODEL = "model"  # parts for this model (or the unit's menu when the customer owns it)
UNIT_TYPE = "unitType"  # models of this kind of machine
NODE = "node"  # one of the main menu's actions
PROBLEM = "problem"  # log the message as a service request, for this unit (or none)

MAX_SUGGESTIONS = 6  # a "Did you mean" list longer than this is no help: ask for the machine instead
MAX_WORDS = 60  # a request is a few words; past this a message is a description, and the rest adds only cost
MAX_QUANTITY = 20  # "2 spark plugs": larger numbers are more likely sizes or model numbers
FUZZY_CUTOFF = 0.8  # difflib ratio: one transposed or missing letter in a 5-letter word
FUZZY_MIN_LENGTH = 4

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "for",
        "of",
        "to",
        "on",
        "in",
        "at",
        "is",
        "it",
        "its",
        "im",
        "me",
        "we",
        "our",
        "your",
        "you",
        "and",
        "or",
        "with",
        "this",
        "that",
        "these",
        "those",
        "need",
        "needs",
        "want",
        "wanted",
        "get",
        "got",
        "have",
        "has",
        "had",
        "do",
        "does",
        "please",
        "pls",
        "plz",
        "can",
        "could",
        "would",
        "will",
        "some",
        "any",
        "new",
        "replacement",
        "another",
        "just",
        "also",
        "hi",
        "hello",
        "hey",
        "there",
        "lizzy",
        "am",
        "are",
        "be",
        "i",
        "so",
        "looking",
        "look",
        "how",
        "much",
        "what",
        "which",
        "where",
        "when",
        "who",
        "why",
        "price",
        "cost",
        "costs",
        "sell",
        "carry",
    ]
)
GENERIC_PART_WORDS = frozenset({"set", "kit", "assembly", "pack", "in", "inch"})
PARTS_WORDS = frozenset({"part", "parts", "accessory", "accessories", "catalog", "catalogue"})
# One word of the message standing for catalogue words (after lowercasing and stemming).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "sparkplug": ("spark", "plug"),
    "string": ("line",),
    "cord": ("line",),
    "gas": ("fuel",),
    "petrol": ("fuel",),
    "petcock": ("fuel", "valve"),
    "cleaner": ("filter",),
}
# Two words that are one thing: "chain saw" is a machine, not a chain.
COMPOUNDS: dict[tuple[str, str], str] = {
    ("chain", "saw"): "chainsaw",
    ("weed", "eater"): "weedeater",
    ("weed", "wacker"): "weedeater",
    ("weed", "whacker"): "weedeater",
    ("leaf", "blower"): "blower",
    ("lawn", "mower"): "mower",
    ("pressure", "washer"): "pressurewasher",
    ("power", "washer"): "pressurewasher",
    ("string", "trimmer"): "trimmer",
    ("pull", "cord"): "pullcord",
    ("starter", "rope"): "pullcord",
    ("customer", "service"): "human",
}
UNIT_WORDS: dict[str, str] = {
    "mower": "Mowers",
    "lawnmower": "Mowers",
    "trimmer": "Trimmers",
    "weedeater": "Trimmers",
    "strimmer": "Trimmers",
    "edger": "Trimmers",
    "blower": "Blowers",
    "leafblower": "Blowers",
    "generator": "Generators",
    "genny": "Generators",
    "chainsaw": "Chainsaws",
    "saw": "Chainsaws",
    "pressurewasher": "Pressure Washers",
    "washer": "Pressure Washers",
}

# --- Actions: phrases are matched on the whole message, words one by one ------------------------

HANDOFF_PHRASES = ("talk to", "speak to", "speak with", "talk with", "call me", "real person", "call back")
HANDOFF_WORDS = frozenset({"human", "person", "agent", "representative", "rep", "operator", "staff"})
TRANSACTION_PHRASES = ("order history", "purchase history", "did i buy", "i bought", "have i bought", "i spent")
TRANSACTION_WORDS = frozenset({"purchase", "receipt", "invoice", "bought", "transaction"})
EQUIPMENT_PHRASES = ("my equipment", "my units", "my machines", "what do i own", "serial number")
EQUIPMENT_WORDS = frozenset({"equipment", "machine", "unit"})
END_PHRASES = ("thank you", "thats all", "that is all", "all set", "nothing else", "no thanks", "good bye")
END_WORDS = frozenset({"bye", "goodbye", "thanks", "thx", "ty", "cheers", "done"})
# Symptoms: enough to log the message as a problem. Prefixes so "leaking", "leaks", "leaked" all count.
SYMPTOM_PREFIXES = (
    "leak",
    "smok",
    "stall",
    "overheat",
    "vibrat",
    "rattl",
    "sputter",
    "backfir",
    "squeal",
    "squeak",
    "broke",
    "crack",
    "stuck",
    "jamm",
    "nois",
    "clog",
    "seiz",
    "surg",
    "misfir",
    "wobbl",
    "burn",
    "smell",
    "stopped",
    "shuts",
    "dies",
    "died",
    "trouble",
)
SYMPTOM_WORDS = frozenset({"bent", "dead", "flat", "loud", "rough", "die", "jam", "smoke", "weird", "strange"})
SYMPTOM_PHRASES = ("hard to start", "cuts out", "cut out", "shut off", "shuts off")
NEGATIONS = frozenset({"wont", "doesnt", "dont", "didnt", "isnt", "cant", "cannot", "not", "never", "aint"})
NEGATED_VERBS = (
    "start",
    "run",
    "work",
    "cut",
    "turn",
    "crank",
    "pull",
    "idle",
    "charg",
    "spin",
    "mov",
    "engag",
    "stay",
    "fir",
    "go",
    "mow",
    "blow",
    "prim",
)
# Words that ask for service without describing a problem: the customer is asked to describe it.
SERVICE_WORDS = frozenset({"repair", "fix", "service", "servicing", "problem", "issue", "technician", "mechanic"})
SERVICE_WORDS |= {"maintenance", "checkup", "broken", "tuneup", "sharpen", "sharpened", "sharpening"}
SERVICE_PHRASES = ("tune up", "oil change", "change the oil", "check up")
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "pair": 2, "couple": 2}
UNIT_SUFFIXES = frozenset({"in", "inch", "inches", "mm", "cc", "hp", "ft", "oz", "v", "volt", "amp", "lb"})


@dataclass(frozen=True)
class Candidate:
    """One reading of the message. ``data`` is JSON-ready: it may wait in the session for the customer's pick."""

    kind: str
    label: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, **self.data}


@dataclass(frozen=True)
class Match:
    candidates: tuple[Candidate, ...]
    sure: bool  # False: one candidate that rests on a guess; ask before acting
    question: str = "Did you mean:"
    note: str = ""  # said before the next prompt ("No blade listed for HRX217; here is what fits it.")


@dataclass(frozen=True)
class Catalogue:
    """What the matcher knows: models ``{name, brand, unitType}`` and parts ``{sku, name, unitType,
    price, stock, models}``. Built once per turn that needs it (``selectors.part_catalogue``)."""

    models: Sequence[dict[str, Any]]
    parts: Sequence[dict[str, Any]]


# --- Words ----------------------------------------------------------------------------------------


APOSTROPHE = re.compile(r"(?<=[a-z])'(?=[a-z])")
WORD = re.compile(r"[a-z0-9]+")


@functools.lru_cache(maxsize=65536)  # catalogue names repeat on every turn that reads them
def _words(text: str) -> tuple[str, ...]:
    return tuple(WORD.findall(APOSTROPHE.sub("", text.lower().replace("\u2019", "'"))))


def words(text: str) -> list[str]:
    """Lowercase words and numbers; apostrophes vanish ("won't" is "wont"), other punctuation splits."""
    return list(_words(text))


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Plural to singular, roughly: enough for "blades", "plugs", "mowers", not for English at large."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and not word[-2].isdigit():
        return word[:-1]
    return word


@functools.lru_cache(maxsize=65536)
def compact(text: str) -> str:
    return "".join(_words(text))


def significant(text: str) -> list[str]:
    """The words that carry meaning: stemmed, synonyms expanded, stopwords dropped."""
    out: list[str] = []
    for word in _merge_compounds(words(text)):
        if word in STOPWORDS:
            continue
        out.extend(SYNONYMS.get(stem(word), (stem(word),)))
    return out


def _merge_compounds(tokens: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(tokens):
        pair = (tokens[index], tokens[index + 1]) if index + 1 < len(tokens) else None
        pair = (stem(pair[0]), stem(pair[1])) if pair else None
        if pair in COMPOUNDS:
            out.append(COMPOUNDS[pair])
            index += 2
        else:
            out.append(tokens[index])
            index += 1
    return out


def _has_phrase(text: str, phrases: Iterable[str]) -> bool:
    return any(f" {phrase} " in text for phrase in phrases)


def _closest(word: str, vocabulary: Iterable[str]) -> str | None:
    """A near-spelling from the vocabulary, same first letter ("sprak" → "spark", not "chair" → "hair")."""
    if len(word) < FUZZY_MIN_LENGTH or word.isdigit():
        return None
    pool = [candidate for candidate in vocabulary if candidate[:1] == word[:1]]
    found = difflib.get_close_matches(word, pool, n=1, cutoff=FUZZY_CUTOFF)
    return found[0] if found else None


# --- The catalogue, as words ----------------------------------------------------------------------


@dataclass
class _Index:
    keys: dict[str, dict[str, Any]]  # compact model name -> model
    aliases: dict[str, str]  # distinctive word of a model name -> compact model name
    brands: set[str]
    part_kinds: dict[str, frozenset[str]]  # sku -> kind words ("blade"; "air", "filter")
    kinds: set[str]


def _index(catalogue: Catalogue) -> _Index:
    keys = {compact(model["name"]): model for model in catalogue.models}
    brands = {compact(model["brand"]) for model in catalogue.models if model.get("brand")}
    model_words = {word for model in catalogue.models for word in words(model["name"])}
    alias_counts: dict[str, list[str]] = {}
    for key, model in keys.items():
        for word in words(model["name"]):
            if len(word) >= 5 and word.isalpha():
                alias_counts.setdefault(word, []).append(key)
    aliases = {word: found[0] for word, found in alias_counts.items() if len(found) == 1}
    ignore = brands | model_words | set(UNIT_WORDS) | GENERIC_PART_WORDS | STOPWORDS
    part_kinds = {}
    for part in catalogue.parts:
        kind = {stem(word) for word in words(part["name"]) if word not in ignore and word.isalpha() and len(word) > 2}
        part_kinds[part["sku"]] = frozenset(kind - set(UNIT_WORDS))
    return _Index(keys, aliases, brands, part_kinds, {word for kind in part_kinds.values() for word in kind})


# --- Reading one message --------------------------------------------------------------------------


@dataclass
class _Reading:
    models: list[str] = field(default_factory=list)  # compact keys named exactly
    near_models: list[str] = field(default_factory=list)  # compact keys of a near miss
    brands: set[str] = field(default_factory=set)
    unit_types: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    guessed: bool = False  # a word was corrected to reach the catalogue
    quantity: int = 1
    parts_word: bool = False
    rest: list[str] = field(default_factory=list)


def _read(text: str, index: _Index) -> _Reading:
    tokens = _merge_compounds(words(text))
    reading = _Reading()
    used: set[int] = set()
    # Model names, longest window first: "fs 56 rc e", "hrx 217", "hrx217".
    for size in (4, 3, 2, 1):
        for start in range(len(tokens) - size + 1):
            span = range(start, start + size)
            if used & set(span):
                continue
            joined = "".join(tokens[start : start + size])
            key = _model_key(joined, index, single=size == 1)
            if key:
                if key not in reading.models:
                    reading.models.append(key)
                used |= set(span)
    for position, token in enumerate(tokens):
        if position in used:
            continue
        word = stem(token)
        if word in STOPWORDS or token in STOPWORDS:
            continue
        if token.isdigit() or token in NUMBER_WORDS:
            following = tokens[position + 1] if position + 1 < len(tokens) else ""
            value = int(token) if token.isdigit() else NUMBER_WORDS[token]
            if 1 <= value <= MAX_QUANTITY and following not in UNIT_SUFFIXES:
                reading.quantity = value
            continue
        expanded = SYNONYMS.get(word, (word,))
        for item in expanded:
            if item in PARTS_WORDS or token in PARTS_WORDS:
                reading.parts_word = True
            elif item in index.brands:
                reading.brands.add(item)
            elif item in UNIT_WORDS:
                reading.unit_types.add(UNIT_WORDS[item])
            elif item in index.kinds:
                reading.kinds.add(item)
            elif any(ch.isdigit() for ch in token) and len(token) >= FUZZY_MIN_LENGTH:
                near = difflib.get_close_matches(token, list(index.keys), n=3, cutoff=FUZZY_CUTOFF)
                reading.near_models += [key for key in near if key not in reading.near_models]
                if not near:
                    reading.rest.append(token)
            else:
                reading.rest.append(item)
    # Misspellings, against the catalogue's own words only (never actions or symptoms).
    for token in list(reading.rest):
        corrected = _closest(token, index.kinds | set(UNIT_WORDS) | index.brands)
        if corrected is None:
            continue
        reading.guessed = True
        reading.rest.remove(token)
        if corrected in index.kinds:
            reading.kinds.add(corrected)
        elif corrected in UNIT_WORDS:
            reading.unit_types.add(UNIT_WORDS[corrected])
        else:
            reading.brands.add(corrected)
    return reading


def _model_key(joined: str, index: _Index, *, single: bool) -> str | None:
    if joined in index.keys:
        return joined
    if single and joined in index.aliases:
        return index.aliases[joined]
    if len(joined) < 3 or not (any(ch.isdigit() for ch in joined) or len(joined) >= 5 or single):
        return None
    prefixed = [key for key in index.keys if key.startswith(joined) and len(joined) * 2 >= len(key)]
    return prefixed[0] if len(prefixed) == 1 else None


def _symptom(tokens: list[str], text: str) -> bool:
    if _has_phrase(text, SYMPTOM_PHRASES):
        return True
    for position, token in enumerate(tokens):
        if token in SYMPTOM_WORDS or any(token.startswith(prefix) for prefix in SYMPTOM_PREFIXES):
            return True
        if token in NEGATIONS:
            following = tokens[position + 1 : position + 4]
            if any(word.startswith(verb) for word in following for verb in NEGATED_VERBS):
                return True
    return False


# --- From a reading to candidates -----------------------------------------------------------------


def _brand_of(equipment: dict[str, Any], index: _Index) -> str:
    model = index.keys.get(compact(equipment.get("model", "")))
    return compact(model["brand"]) if model else compact(equipment.get("name", "").split(" ")[0])


def _owned(equipment: Sequence[dict[str, Any]], reading: _Reading, index: _Index) -> list[dict[str, Any]]:
    """The customer's units the message can mean: the named models, else the named kinds/brands, else all."""
    if reading.models:
        return [e for e in equipment if compact(e.get("model", "")) in reading.models]
    return [
        e
        for e in equipment
        if (not reading.unit_types or e.get("unitType") in reading.unit_types)
        and (not reading.brands or _brand_of(e, index) in reading.brands)
    ]


def _unit_label(equipment: dict[str, Any]) -> str:
    return f"{equipment['name']} (SN {equipment['serialNumber']})"


def _part_candidate(part: dict[str, Any], model: dict[str, Any] | None, owner: dict[str, Any] | None, qty: int):
    data = {
        "sku": part["sku"],
        "name": part["name"],
        "price": part["price"],
        "stock": part["stock"],
        "unitType": part["unitType"],
        "model": model["name"] if model else None,
        "equipmentId": owner["equipmentId"] if owner else None,
        "quantity": qty,
    }
    stock = "" if part["stock"] else " (on order)"
    return Candidate(PART, f"{part['name']} ${part['price']}{stock}", data)


def _model_candidate(model: dict[str, Any], owner: dict[str, Any] | None, *, then: str) -> Candidate:
    data = {"model": model["name"], "unitType": model["unitType"], "then": then}
    data["equipmentId"] = owner["equipmentId"] if owner else None
    return Candidate(MODEL, f"Parts for {model['brand']} {model['name']}".strip(), data)


def _parts_for(
    reading: _Reading, catalogue: Catalogue, index: _Index, equipment: Sequence[dict[str, Any]]
) -> tuple[list[Candidate], bool]:
    """Parts of the kinds named, within the models the message names, else the customer's, else any.

    The flag says the search left the customer's own units without being told to: a spark plug for
    someone who owns only a mower may be for a saw we do not know about, but that is a guess.
    """
    owned = _owned(equipment, reading, index)
    scopes: list[tuple[set[str] | None, set[str] | None, bool]] = []  # (model keys, unit types, a guess)
    if reading.models or reading.near_models:
        scopes.append((set(reading.models or reading.near_models), None, False))
    else:
        if owned:
            scopes.append(({compact(e["model"]) for e in owned}, None, False))
        if reading.unit_types or reading.brands:
            keys = {
                key
                for key, model in index.keys.items()
                if (not reading.unit_types or model["unitType"] in reading.unit_types)
                and (not reading.brands or compact(model["brand"]) in reading.brands)
            }
            scopes.append((keys, None, False) if reading.brands else (None, reading.unit_types, False))
        else:
            scopes.append((None, None, bool(equipment)))
    for models, unit_types, guess in scopes:
        scored: list[tuple[int, dict[str, Any], str | None]] = []
        for part in catalogue.parts:
            fits = [compact(name) for name in part["models"]]
            if models is not None:
                fits = [key for key in fits if key in models]
                if not fits:
                    continue
            if unit_types is not None and part["unitType"] not in unit_types:
                continue
            score = len(index.part_kinds.get(part["sku"], frozenset()) & reading.kinds)
            if score:
                scored.append((score, part, fits[0] if fits else None))
        if scored:
            best = max(score for score, _part, _key in scored)
            found = []
            for _score, part, key in (entry for entry in scored if entry[0] == best):
                model = index.keys.get(key) if key else None
                owner = next((e for e in owned if key and compact(e["model"]) == key), None)
                found.append(_part_candidate(part, model, owner, reading.quantity))
            return found, guess
    return [], False


def _problem_candidates(reading: _Reading, index: _Index, equipment, selected_id: str | None) -> list[Candidate]:
    named = bool(reading.models or reading.unit_types or reading.brands)
    owned = _owned(equipment, reading, index)
    if named and not owned:
        return [Candidate(PROBLEM, "Report this problem", {"equipmentId": None})]
    if not named:
        selected = [e for e in equipment if e["equipmentId"] == selected_id]
        owned = selected or list(equipment)
    if len(owned) <= 1:
        unit = owned[0] if owned else None
        label = f"Report this problem with {_unit_label(unit)}" if unit else "Report this problem"
        return [Candidate(PROBLEM, label, {"equipmentId": unit["equipmentId"] if unit else None})]
    units = [Candidate(PROBLEM, _unit_label(e), {"equipmentId": e["equipmentId"]}) for e in owned]
    return [*units[: MAX_SUGGESTIONS - 1], Candidate(PROBLEM, "Another machine", {"equipmentId": None})]


def message_match(
    *,
    text: str,
    catalogue: Catalogue,
    equipment: Sequence[dict[str, Any]] = (),
    selected_equipment_id: str | None = None,
    node_labels: dict[str, str],
) -> Match | None:
    """Candidates for what ``text`` asks for, or None when nothing in it can be acted on.

    ``node_labels`` names the main menu's actions (``{"HUMAN_HANDOFF": "Talk to a person", ...}``),
    ``equipment`` is the customer's profile equipment, ``selected_equipment_id`` the unit in context.
    """
    text = " ".join(words(text)[:MAX_WORDS])
    tokens = _merge_compounds(words(text))
    if not tokens:
        return None
    padded = f" {' '.join(words(text))} "
    index = _index(catalogue)
    reading = _read(text, index)
    stems = {stem(token) for token in tokens}

    def node(name: str) -> Candidate:
        return Candidate(NODE, node_labels[name], {"node": name})

    handoff = _has_phrase(padded, HANDOFF_PHRASES) or bool(stems & HANDOFF_WORDS)
    symptom = _symptom(tokens, padded)
    service = bool(stems & SERVICE_WORDS) or _has_phrase(padded, SERVICE_PHRASES)
    if handoff and (_has_phrase(padded, HANDOFF_PHRASES) or "human" in stems or "agent" in stems):
        return Match((node("HUMAN_HANDOFF"),), sure=True)  # an explicit request for a person wins
    intents: list[Candidate] = []
    if handoff:
        intents.append(node("HUMAN_HANDOFF"))
    if _has_phrase(padded, TRANSACTION_PHRASES) or stems & TRANSACTION_WORDS:
        intents.append(node("TRANSACTIONS"))
    if _has_phrase(padded, EQUIPMENT_PHRASES) or (stems & EQUIPMENT_WORDS and not reading.kinds):
        intents.append(node("SELECT_EQUIPMENT"))
    if symptom:
        problems = _problem_candidates(reading, index, equipment, selected_equipment_id)
    elif service:
        problems = [node("PROBLEM_DESCRIPTION")]
    else:
        problems = []
    parts: list[Candidate] = []
    note = ""
    guess = False
    if reading.kinds:
        parts, guess = _parts_for(reading, catalogue, index, equipment)
        if not parts and not problems and (reading.models or reading.near_models):
            key = (reading.models or reading.near_models)[0]
            owner = next(iter(_owned(equipment, reading, index)), None)
            kind = " ".join(sorted(reading.kinds))
            note = f'I couldn\'t find "{kind}" for {index.keys[key]["name"]}; here is what fits it.'
            parts = [_model_candidate(index.keys[key], owner, then="PARTS_LIST")]
        if guess and (intents or problems):
            parts, guess = [], False  # another reading stands on its own: no guesses from machines they don't own
        if len(parts) > MAX_SUGGESTIONS:
            unit_types = sorted({c.data["unitType"] for c in parts})
            parts = [_unit_type_candidate(unit_types[0])] if len(unit_types) == 1 else [node("PARTS_UNIT_TYPE")]
            note = "Many parts match that. Which machine is it for?"
    elif reading.models or reading.near_models:
        owned = _owned(equipment, reading, index) if reading.models else []
        keys = reading.models or reading.near_models
        then = "PARTS_LIST" if reading.parts_word or problems or not owned else "EQUIPMENT_MENU"
        if not problems:
            parts = [_model_candidate(index.keys[key], _owner_of(key, owned), then=then) for key in keys]
    elif reading.parts_word:
        owned = _owned(equipment, reading, index)
        if reading.unit_types or reading.brands:
            if len(owned) == 1:
                model = index.keys.get(compact(owned[0]["model"]))
                parts = [_model_candidate(model, owned[0], then="PARTS_LIST")] if model else []
            elif len(reading.unit_types) == 1:
                parts = [_unit_type_candidate(next(iter(reading.unit_types)))]
        if not parts:
            parts = [node("PARTS_UNIT_TYPE")]
    candidates = _dedupe([*intents, *problems, *parts])
    if not candidates:
        ended = _has_phrase(padded, END_PHRASES) or bool(stems & END_WORDS)
        return Match((node("END"),), sure=True) if ended else None
    if len(candidates) == 1:
        only = candidates[0]
        acts = only.kind == PROBLEM or (only.kind == NODE and only.data["node"] in {"HUMAN_HANDOFF", "END"})
        sure = not (reading.guessed and acts) and not (reading.near_models and only.kind != PART) and not guess
        return Match(tuple(candidates), sure=sure, note=note)
    question = "Which machine is it?" if all(c.kind == PROBLEM for c in candidates) else "Did you mean:"
    return Match(tuple(candidates[:MAX_SUGGESTIONS]), sure=False, question=question, note=note)


def _owner_of(key: str, owned: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in owned if compact(e["model"]) == key), None)


def _unit_type_candidate(unit_type: str) -> Candidate:
    return Candidate(UNIT_TYPE, f"{unit_type} parts", {"unitType": unit_type})


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[tuple[str, str]] = set()
    out = []
    for candidate in candidates:
        key = (candidate.kind, candidate.label)
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out
