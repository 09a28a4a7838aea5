"""An SMS conversation in the terminal, through the same engine as the webhook (no HTTP, no Twilio).

stdout carries the conversation only. The product's logs go to stderr, and a terminal shows both, so
while chatting the log handlers drop everything below WARNING: a turn's INFO line would otherwise be
printed in the middle of the conversation. Warnings and errors (a failed order, an unreadable session)
still reach stderr; ``-v 2`` keeps every log line.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from lizzy.phone import InvalidPhoneNumber, normalize_phone
from sessions_app.services.workflow import sms_message_handle

INTRO = 'Texting as this phone; /quit to leave. Say hi (or what you need, like "blade for my mower") to start.'
QUIET_BELOW = logging.WARNING


@contextmanager
def quiet_logs(level: int) -> Iterator[None]:
    """Raise every handler reachable from the root logger to ``level`` for the duration, then restore."""
    handlers = {
        handler
        for logger in (logging.getLogger(), *logging.root.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
    }
    saved = {handler: handler.level for handler in handlers}
    for handler in handlers:
        handler.setLevel(max(handler.level, level))
    try:
        yield
    finally:
        for handler, previous in saved.items():
            handler.setLevel(previous)


class Command(BaseCommand):
    stealth_options = ("stdin",)
    help = (
        "Chat with the SMS workflow as the given phone (e.g. +12065550100). Type /quit or Ctrl-D to leave. "
        "Log lines below WARNING are hidden while chatting; -v 2 shows them (on stderr)."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stdin = sys.stdin

    def add_arguments(self, parser):
        parser.add_argument("phone", help="The customer's phone number, E.164.")

    def handle(self, *args, **options):
        self.stdin = options.get("stdin") or self.stdin
        try:
            phone = normalize_phone(options["phone"])
        except InvalidPhoneNumber as exc:
            raise CommandError(exc.message) from exc
        level = logging.NOTSET if options["verbosity"] >= 2 else QUIET_BELOW
        with quiet_logs(level):
            self._chat(phone)

    def _chat(self, phone: str) -> None:
        self.stdout.write(self.style.NOTICE(INTRO))
        while True:
            self.stdout.write("you> ", ending="")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line or line.strip() == "/quit":
                self.stdout.write("")
                return
            text = line.strip()
            if not text:
                continue
            try:
                result = sms_message_handle(phone=phone, text=text, message_sid=f"CLI{uuid.uuid4().hex}")
            except ApplicationError as exc:
                self.stderr.write(f"error: {exc.message}")
                continue
            self.stdout.write(result.reply or "(no reply: this number has opted out; text START)")
            self.stdout.write(self.style.HTTP_INFO(f"[{result.node}, turn {result.turn_count}]"))
