"""Periodic infrastructure tasks (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from lizzy.cost import capacity_flush


@shared_task(ignore_result=True)
def capacity_flush_task() -> int:
    """Persist this worker's consumed-capacity counters (beat runs it every minute)."""
    return capacity_flush()
