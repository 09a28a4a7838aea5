"""The vocabulary nodes are written in: a turn being applied, nodes, and the ways a node accepts a reply.

A node is data: its prompt, what it accepts (a numbered menu, a pick from a list, free text, anything),
where each reply leads and which side effect it asks for. The engine (``engine.py``) owns the rest:
keywords (MENU, HELP, STOP, START), caching, recording, the session write and the retries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import iso_utc
from sessions_app import selectors
from sessions_app.services.sessions import Session
from sessions_app.services.workflow.match import Catalogue, compact, significant, words

MAX_REPLY_CHARS = 1600  # Twilio refuses longer messages (FACTS.md)
HOME = "HOME"  # a transition target: MAIN_MENU for customers, ONBOARDING for unknown numbers
LIST_START = "listStart"
LIST_END = "listEnd"
NUMBERS_SPELT_OUT = 3  # "Reply with 1, 2 or MENU" up to this many choices, "a number from 1 to 6" beyond
NOTE_WHOLE_LIST = "That's the whole list."
NOTE_LIST_AGAIN = "That was the whole list; here it is from the top."
YES_WORDS = frozenset({"yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "correct", "right"})
POLITE_WORDS = frozenset({"please", "pls", "plz", "thanks", "thank", "you", "thx"})


@dataclass
class Turn:
    """One inbound message being applied to a working copy of the session (re-built on every retry)."""

    session: Session
    phone: str
    message_sid: str
    text: str
    now: dt.datetime
    notes: list[str] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    first: bool = False  # the first message of the session: the only one that is greeted
    _catalogue: Catalogue | None = field(default=None, repr=False)

    @property
    def data(self) -> dict[str, Any]:
        return self.session.session_data

    @property
    def home(self) -> str:
        return "MAIN_MENU" if self.session.customer_id else "ONBOARDING"

    def note(self, text: str) -> None:
        self.notes.append(text)

    def effect(self, kind: str, **args: Any) -> None:
        """Ask for a side effect; it runs only once the session write has won (and again on replay)."""
        self.effects.append({"kind": kind, **args})

    def catalogue(self) -> Catalogue:
        """Models and parts for free-text matching: read at most once per turn, and only when needed."""
        if self._catalogue is None:
            loaded = selectors.part_catalogue()
            self._catalogue = Catalogue(models=loaded["models"], parts=loaded["parts"])
        return self._catalogue

    # --- cachedData: loaded on first need, reloaded only when older than the configured window ----

    def _fresh(self, stamp_key: str, seconds: int) -> bool:
        stamp = self.session.cached_data.get(stamp_key)
        if not stamp:
            return False
        try:
            loaded = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except (TypeError, ValueError):
            return False
        return 0 <= (self.now - loaded).total_seconds() < seconds

    def profile(self) -> dict[str, Any] | None:
        cached = self.session.cached_data
        if cached.get("customerProfile") and self._fresh("profileCacheTime", settings.LIZZY_PROFILE_CACHE_SECONDS):
            return cached["customerProfile"]
        if not self.session.customer_id:
            return None
        profile = selectors.customer_profile(customer_id=self.session.customer_id)
        if profile is not None:
            cached["customerProfile"] = profile
            cached["profileCacheTime"] = iso_utc(self.now.replace(microsecond=0))
        return profile

    def transactions(self) -> list[dict[str, Any]]:
        cached = self.session.cached_data
        if "transactions" in cached and self._fresh("transactionsCacheTime", settings.LIZZY_TRANSACTIONS_CACHE_SECONDS):
            return cached["transactions"].get("items", [])
        if not self.session.customer_id:
            return []
        items = selectors.customer_recent_transactions(customer_id=self.session.customer_id)
        cached["transactions"] = {"items": items}
        cached["transactionsCacheTime"] = iso_utc(self.now.replace(microsecond=0))
        return items


Text = str | Callable[[Turn], str]
# A reply handler returns the next node (or HOME), or None when the reply was not understood.
Target = str | None


def render_text(text: Text, turn: Turn) -> str:
    return text(turn) if callable(text) else text


@dataclass(frozen=True)
class Option:
    label: str
    target: str
    action: Callable[[Turn], Target] | None = None  # may redirect (return another node) or add notes/effects
    effect: str | None = None  # the effect the action asks for, named here so the node table documents it
    aliases: frozenset[str] = frozenset()  # whole replies that pick it too ("yes", "back"), lowercase


def reply_number(text: str) -> int | None:
    """ "2", " 2 ", "2.", "#2", "2)": the customer means option 2."""
    found = re.fullmatch(r"\s*#?(\d{1,4})\s*[.)!]?\s*", text)
    return int(found.group(1)) if found else None


def reply_words(text: str) -> str:
    """A short reply as its words, politeness dropped: "Yes, please!" is "yes"."""
    return " ".join(word for word in words(text) if word not in POLITE_WORDS) or " ".join(words(text))


def numbers_expected(count: int) -> list[str]:
    if count <= NUMBERS_SPELT_OUT:
        return [str(number) for number in range(1, count + 1)]
    return [f"a number from 1 to {count}"]


@dataclass(frozen=True)
class Menu:
    """Numbered options: "1" picks the first; an option's aliases pick it too."""

    options: tuple[Option, ...]

    def render(self, turn: Turn, budget: int) -> str:
        return "\n".join(f"{number}) {option.label}" for number, option in enumerate(self.options, start=1))

    def accept(self, turn: Turn, text: str) -> Target:
        option = self._option(text)
        if option is None:
            return None
        redirect = option.action(turn) if option.action else None
        return redirect or option.target

    def _option(self, text: str) -> Option | None:
        number = reply_number(text)
        if number is not None:
            return self.options[number - 1] if 1 <= number <= len(self.options) else None
        said = reply_words(text)
        return next((option for option in self.options if said in option.aliases), None)

    def expects(self, turn: Turn) -> list[str]:
        return numbers_expected(len(self.options))


@dataclass(frozen=True)
class Pick:
    """A list from CRM data, paged to fit one SMS ("MORE" shows the next page).

    Numbers run over the whole list (page two starts at 9, say), so a number stays valid after MORE; a
    reply that names exactly one item ("the blade", "mowers") picks it too. ``choose`` None makes it a
    read-only list (recent purchases): its lines are not numbered, since there is nothing to pick.
    """

    items: Callable[[Turn], Sequence[Any]]
    label: Callable[[Any], str]
    choose: Callable[[Turn, Any], Target] | None = None
    empty: Text = "Nothing to show here."
    yes_picks_single: bool = False  # "yes" picks the only item (a "Did you mean" with one suggestion)

    def render(self, turn: Turn, budget: int) -> str:
        items = self.items(turn)
        if not items:
            turn.data[LIST_START] = turn.data[LIST_END] = 0
            return render_text(self.empty, turn)
        start = int(turn.data.get(LIST_START, 0) or 0)
        if start >= len(items):
            start = 0
        lines: list[str] = []
        used = 0
        end = start
        more_hint = len("Reply MORE for 9999 more.") + 1
        for index in range(start, len(items)):
            marker = f"{index + 1})" if self.choose else "-"
            line = f"{marker} {self.label(items[index])}"
            room = budget - (more_hint if index + 1 < len(items) else 0)
            if lines and used + len(line) + 1 > room:
                break  # never cut an item: it goes to the next page whole
            lines.append(line)
            used += len(line) + 1
            end = index + 1
        turn.data[LIST_START], turn.data[LIST_END] = start, end
        if end < len(items):
            lines.append(f"Reply MORE for {len(items) - end} more.")
        return "\n".join(lines)

    def accept(self, turn: Turn, text: str) -> Target:
        if self.choose is None:
            return None
        items = self.items(turn)
        number = reply_number(text)
        if number is not None:
            return self.choose(turn, items[number - 1]) if 1 <= number <= len(items) else None
        if self.yes_picks_single and len(items) == 1 and reply_words(text) in YES_WORDS:
            return self.choose(turn, items[0])
        named = self._named(items, text)
        return self.choose(turn, named) if named is not None else None

    def _named(self, items: Sequence[Any], text: str) -> Any | None:
        """The one item whose label holds every meaningful word of the reply, if exactly one does."""
        wanted = set(significant(text)) - {"part"}
        squeezed = compact(text)
        if not wanted:
            return None
        hits = []
        for item in items:
            label = self.label(item)
            if wanted <= set(significant(label)) or (len(squeezed) >= 4 and squeezed in compact(label)):
                hits.append(item)
        return hits[0] if len(hits) == 1 else None

    def more(self, turn: Turn) -> None:
        items = self.items(turn)
        end = int(turn.data.get(LIST_END, 0) or 0)
        if end >= len(items):
            single_page = int(turn.data.get(LIST_START, 0) or 0) == 0
            turn.note(NOTE_WHOLE_LIST if single_page else NOTE_LIST_AGAIN)
            end = 0
        turn.data[LIST_START] = end

    def has_more(self, turn: Turn) -> bool:
        return int(turn.data.get(LIST_END, 0) or 0) < len(self.items(turn))

    def expects(self, turn: Turn) -> list[str]:
        choices = numbers_expected(len(self.items(turn))) if self.choose else []
        return [*choices, "MORE"] if self.has_more(turn) else choices


@dataclass(frozen=True)
class FreeText:
    """Any text of a sensible length (a problem description)."""

    on_text: Callable[[Turn, str], Target]
    min_length: int = 3

    def render(self, turn: Turn, budget: int) -> str:
        return ""

    def accept(self, turn: Turn, text: str) -> Target:
        if len(text) < self.min_length:
            return None
        return self.on_text(turn, text)

    def expects(self, turn: Turn) -> list[str]:
        return [f"a short description (at least {self.min_length} characters)"]


@dataclass(frozen=True)
class AnyReply:
    """Whatever the customer texts leads on (the END node: any text starts again)."""

    target: str

    def render(self, turn: Turn, budget: int) -> str:
        return ""

    def accept(self, turn: Turn, text: str) -> Target:
        return self.target

    def expects(self, turn: Turn) -> list[str]:
        return ["any message"]


Accepts = Menu | Pick | FreeText | AnyReply


@dataclass(frozen=True)
class Node:
    name: str
    prompt: Text  # the first line(s) shown on arrival
    accepts: Accepts
    footer: Text = ""
    description: str = ""  # for docs/WORKFLOW.md and `sms_chat`
    interpret: bool = False  # free text the node does not accept is matched to parts and actions (match.py)
    not_understood: str = ""  # said instead of "Sorry, I didn't get that…" (a hand-off: nothing is passed on)

    def render(self, turn: Turn, budget: int) -> str:
        head = render_text(self.prompt, turn)
        foot = render_text(self.footer, turn)
        fixed = len(head) + len(foot) + 2
        body = self.accepts.render(turn, max(budget - fixed, 80))
        return "\n".join(part for part in (head, body, foot) if part)


def fit_reply(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    """The last resort: cut at a line boundary so no list item is ever cut in half."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip()
