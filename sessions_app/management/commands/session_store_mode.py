"""Show or change the session store mode: `session_store_mode` / `session_store_mode cutover --reason "..."`."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lizzy.errors import ApplicationError
from lizzy.redis import RedisUnavailable
from sessions_app.selectors import flush_backlog, shadow_read_stats
from sessions_app.services.store_modes import MODE_ORDER, store_mode_get, store_mode_history, store_mode_set


class Command(BaseCommand):
    help = "Print the session store mode and its history, or change it (takes effect within seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("mode", nargs="?", choices=MODE_ORDER, help="The mode to switch to.")
        parser.add_argument("--reason", default="", help="Why (required for a rollback or --force).")
        parser.add_argument("--force", action="store_true", help="Override the cutover/backlog guard.")
        parser.add_argument("--actor", default=None, help="Who is changing it (default: the OS user).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["mode"]:
            actor = options["actor"] or f"cli:{getpass.getuser()}"
            try:
                change = store_mode_set(
                    mode=options["mode"], actor=actor, reason=options["reason"], force=options["force"]
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(self.style.SUCCESS(f"Session store mode: {change.from_mode} → {change.to_mode}."))
            return
        state = store_mode_get()
        self.stdout.write(f"Current mode: {state.mode}")
        if state.changed_at:
            self.stdout.write(f"  since {state.changed_at:%Y-%m-%d %H:%M:%S}Z by {state.changed_by}: {state.reason}")
        try:
            stats = shadow_read_stats()
            backlog = flush_backlog()
            self.stdout.write(
                f"Shadow-read divergences (last {stats['window_seconds']} s): {stats['divergences']}; "
                f"write-behind backlog: {backlog.size}"
            )
            for sample in stats["samples"][:5]:
                self.stdout.write(f"  {sample['time']} {sample['phoneHash']} differs in {', '.join(sample['fields'])}")
        except RedisUnavailable as exc:
            self.stdout.write(f"Redis: {exc.message}")
        history = store_mode_history()
        self.stdout.write("History:" if history else "History: no changes yet.")
        for change in history:
            forced = " (forced)" if change.forced else ""
            self.stdout.write(
                f"  {change.changed_at:%Y-%m-%d %H:%M:%S}Z {change.from_mode or '-'} → {change.to_mode}"
                f" by {change.changed_by}{forced}: {change.reason}"
            )
