"""Figures for docs/RELIABILITY.md: tests append one JSON line per measurement when LIZZY_FIGURES names a file.

LIZZY_FIGURES=var/figures.jsonl make test   # then read the numbers from var/figures.jsonl
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

_lock = threading.Lock()


def record_figure(name: str, **values: Any) -> None:
    """Append ``{"test": name, ...values}`` to $LIZZY_FIGURES (no-op when unset)."""
    path = os.environ.get("LIZZY_FIGURES")
    if not path:
        return
    with _lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"test": name, **values}, default=str) + "\n")
