"""An SMS conversation in the terminal, through the same engine as the webhook (no HTTP, no Twilio)."""

from __future__ import annotations

import sys
import uuid

from django.core.management.base import BaseCommand, CommandError

from lizzy.errors import ApplicationError
from lizzy.phone import InvalidPhoneNumber, normalize_phone
from sessions_app.services.workflow import sms_message_handle


class Command(BaseCommand):
    stealth_options = ("stdin",)
    help = "Chat with the SMS workflow as the given phone (e.g. +12065550100). Type /quit or Ctrl-D to leave."

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
        self.stdout.write(self.style.NOTICE("Texting as this phone; /quit to leave. Say hi to start."))
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
