"""The vocabulary nodes are written in: a turn being applied, nodes, and the ways a node accepts a reply.

A node is data: its prompt, what it accepts (a numbered menu, a pick from a list, free text, anything),
where each reply leads and which side effect it asks for. The engine (``engine.py``) owns the rest:
keywords (MENU, HELP, STOP, START), caching, recording, the session write and the retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lizzy.dynamodb import iso_utc
from sessions_app import selectors
from sessions_app.services.sessions import Session

MAX_REPLY_CHARS = 1600  # Twilio refuses longer messages (FACTS.md)
HOME = "HOME"  # a transition target: MAIN_MENU for customers, ONBOARDING for unknown numbers
LIST_START = "listStart"
LIST_END = "listEnd"


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


@dataclass(frozen=True)
class Menu:
    """Numbered options: "1" picks the first."""

    options: tuple[Option, ...]

    def render(self, turn: Turn, budget: int) -> str:
        return "\n".join(f"{number}) {option.label}" for number, option in enumerate(self.options, start=1))

    def accept(self, turn: Turn, text: str) -> Target:
        if not text.isdigit() or not 1 <= int(text) <= len(self.options):
            return None
        option = self.options[int(text) - 1]
        redirect = option.action(turn) if option.action else None
        return redirect or option.target

    def expects(self, turn: Turn) -> str:
        return f"a number from 1 to {len(self.options)}"


@dataclass(frozen=True)
class Pick:
    """A numbered list from CRM data, paged to fit one SMS ("MORE" shows the next page).

    Numbers run over the whole list (page two starts at 9, say), so a number stays valid after MORE.
    ``choose`` None makes it a read-only list (recent transactions).
    """

    items: Callable[[Turn], Sequence[Any]]
    label: Callable[[Any], str]
    choose: Callable[[Turn, Any], Target] | None = None
    empty: Text = "Nothing to show here."

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
        for index in range(start, len(items)):
            line = f"{index + 1}) {self.label(items[index])}"
            if lines and used + len(line) + 1 > budget:
                break  # never cut an item: it goes to the next page whole
            lines.append(line)
            used += len(line) + 1
            end = index + 1
        turn.data[LIST_START], turn.data[LIST_END] = start, end
        if end < len(items):
            lines.append(f"MORE: {len(items) - end} more")
        return "\n".join(lines)

    def accept(self, turn: Turn, text: str) -> Target:
        if self.choose is None or not text.isdigit():
            return None
        items = self.items(turn)
        number = int(text)
        if not 1 <= number <= len(items):
            return None
        return self.choose(turn, items[number - 1])

    def more(self, turn: Turn) -> None:
        items = self.items(turn)
        end = int(turn.data.get(LIST_END, 0) or 0)
        if end >= len(items):
            turn.note("That was the whole list; here it is from the top.")
            end = 0
        turn.data[LIST_START] = end

    def expects(self, turn: Turn) -> str:
        if self.choose is None:
            return "MORE or MENU"
        count = len(self.items(turn))
        return f"a number from 1 to {count}" if count else "MENU"


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

    def expects(self, turn: Turn) -> str:
        return f"a short description (at least {self.min_length} characters)"


@dataclass(frozen=True)
class AnyReply:
    """Whatever the customer texts leads on (the END node: any text starts again)."""

    target: str

    def render(self, turn: Turn, budget: int) -> str:
        return ""

    def accept(self, turn: Turn, text: str) -> Target:
        return self.target

    def expects(self, turn: Turn) -> str:
        return "any message"


Accepts = Menu | Pick | FreeText | AnyReply


@dataclass(frozen=True)
class Node:
    name: str
    prompt: Text  # the first line(s) shown on arrival
    accepts: Accepts
    footer: Text = ""
    description: str = ""  # for docs/WORKFLOW.md and `sms_chat`

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
