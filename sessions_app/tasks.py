"""Celery tasks: thin wrappers that call a service."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from lizzy.redis import redis_url
from sessions_app.services.store.write_behind import sessions_flush
from sessions_app.services.store_modes import store_mode_current


@shared_task(ignore_result=True, acks_late=False)
def sessions_flush_task() -> dict[str, Any] | None:
    """The write-behind flush (beat: every LIZZY_FLUSH_INTERVAL s). Idempotent; a Redis lock serialises runs."""
    if not redis_url():
        return None
    return asdict(sessions_flush(mode=store_mode_current()))
