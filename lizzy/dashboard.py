"""The admin home's dashboard: a registry of panels, so every part of the product adds its own.

A panel is a title, a template and a function that returns the template's context. Another issue
adds one with a single call, for example in its ``AppConfig.ready``::

    from lizzy.dashboard import register_panel
    register_panel("store_mode", "Session store mode", "admin/dashboard/store_mode.html", store_mode_context)

A panel that raises is shown as unavailable (with the error class), never as a broken admin home.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

logger = logging.getLogger(__name__)

PanelContext = Callable[[HttpRequest], dict[str, Any]]


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    template: str
    context: PanelContext
    order: int = 100
    permission: str | None = None  # a user needs it to see the panel; None: any staff member


@dataclass(frozen=True)
class RenderedPanel:
    key: str
    title: str
    html: SafeString
    error: str | None = None


_panels: dict[str, Panel] = {}


def register_panel(
    key: str,
    title: str,
    template: str,
    context: PanelContext,
    *,
    order: int = 100,
    permission: str | None = None,
) -> Panel:
    """Add (or replace, by key) a dashboard panel. Lower ``order`` shows first."""
    panel = Panel(key=key, title=title, template=template, context=context, order=order, permission=permission)
    _panels[key] = panel
    return panel


def unregister_panel(key: str) -> None:
    _panels.pop(key, None)


def dashboard_panels() -> list[Panel]:
    return sorted(_panels.values(), key=lambda panel: (panel.order, panel.key))


def dashboard_render(*, request: HttpRequest) -> list[RenderedPanel]:
    """Every panel the user may see, rendered; a failing panel becomes an "unavailable" box."""
    rendered = []
    for panel in dashboard_panels():
        if panel.permission and not request.user.has_perm(panel.permission):
            continue
        try:
            context = {"panel": panel, "request": request, **panel.context(request)}
            html = mark_safe(render_to_string(panel.template, context, request=request))  # noqa: S308 - our template
            rendered.append(RenderedPanel(panel.key, panel.title, html))
        except Exception as exc:
            logger.warning("dashboard panel %s failed", panel.key, exc_info=True)
            rendered.append(RenderedPanel(panel.key, panel.title, mark_safe(""), error=type(exc).__name__))
    return rendered
