"""Live SMS sessions in the admin: a changelist and detail page over DynamoDB (not the ORM).

URLs name a session by an opaque reference (``phone_ref``), never by its phone number, and the search by
phone is a POST: access logs and browser history hold no numbers.

Pages are plain admin views (``get_urls`` + ``admin_site.admin_view``) rendered with the admin's
own templates and CSS, so they look native. Reading needs ``lizzy.view_live_sessions``; the
actions (expire now, reset to MAIN_MENU, delete) need ``lizzy.manage_live_sessions``, ask for
confirmation, call one service each and are written to Django's admin log (LogEntry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from lizzy.errors import ApplicationError
from lizzy.models import OpsConsole
from lizzy.permissions import READ_CUSTOMER_MESSAGES
from lizzy.phone import hash_phone, mask_phone, normalize_phone, phone_from_ref, phone_ref
from lizzy.redis import RedisUnavailable
from sessions_app.admin_panels import SESSIONS_BY_NODE_KEY
from sessions_app.selectors import CUSTOMER_KNOWN, CUSTOMER_UNKNOWN, session_get, session_search
from sessions_app.services.events import presence_leave, presence_touch
from sessions_app.services.ops import session_expire, session_remove, session_reset
from sessions_app.services.session_documents import customer_words_masked
from sessions_app.services.sessions import MAIN_MENU, Session
from sessions_app.services.workflow.engine import turn_log_read

VIEW_PERMISSION = "lizzy.view_live_sessions"
MANAGE_PERMISSION = "lizzy.manage_live_sessions"
# What the customer typed may hold anything (addresses, card numbers): operators read it, viewers do not.
MESSAGES_PERMISSION = READ_CUSTOMER_MESSAGES
MASKED_TEXT = "•" * 8
PAGE_SIZE = 50
PRESENCE_REFRESH_SECONDS = 10  # presence entries live LIZZY_PRESENCE_SECONDS (30 s): three heartbeats
ERR_NO_SESSION = "No live session for {phone}."
ERR_BAD_VERSION = "The form did not say which version of the session you saw; reload the page and try again."


@dataclass(frozen=True)
class SessionAction:
    key: str
    label: str
    flag: int
    verb: str  # for the confirmation page and the admin log


ACTIONS = {
    "expire": SessionAction("expire", "Expire now", CHANGE, "Expired the session now"),
    "reset": SessionAction("reset", "Reset to MAIN_MENU", CHANGE, "Reset the session to MAIN_MENU"),
    "delete": SessionAction("delete", "Delete", DELETION, "Deleted the session"),
}


# --- Display helpers (unit tested) ------------------------------------------------------------


def ttl_countdown(session: Session, *, now: int | None = None) -> str:
    """``12m 04s`` until the session expires, ``expired`` once ``ttl`` has passed, ``-`` without ttl."""
    if session.ttl is None:
        return "-"
    remaining = session.ttl - (now if now is not None else int(timezone.now().timestamp()))
    if remaining <= 0:
        return "expired"
    hours, rest = divmod(remaining, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def customer_display(session: Session) -> str:
    if not session.customer_id:
        return mark_safe('<span class="quiet">unknown</span>')  # noqa: S308 - a constant
    profile = session.cached_data.get("customerProfile") or {}
    name = profile.get("name") if isinstance(profile, dict) else None
    if name:
        return format_html('{} <span class="quiet">({})</span>', name, session.customer_id)
    return format_html("{}", session.customer_id)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def conversation_turns(session: Session, *, show_text: bool = False) -> list[dict[str, Any]]:
    """The workflow's turn history, newest first: what the customer wrote (``show_text``; masked otherwise)
    and the reply sent, when the logs still hold them. Turns recorded before the engine kept the text show
    its length only.
    """
    log = turn_log_read(session)
    replies = {entry.get("sid"): entry.get("reply", "") for entry in log.message_log if isinstance(entry, dict)}
    turns = []
    for entry in reversed(log.history):
        if not isinstance(entry, dict):
            continue
        turns.append(
            {
                "at": entry.get("at"),
                "sid": entry.get("sid"),
                "from": entry.get("from") or "(new session)",
                "to": entry.get("to"),
                "in_chars": entry.get("inLen"),
                "text": (entry.get("in") if show_text else MASKED_TEXT) if entry.get("in") is not None else None,
                "reply": replies.get(entry.get("sid")),
            }
        )
    return turns


def presence_viewers(request: HttpRequest, phone: str, *, leave: bool = False) -> list[str] | None:
    """Mark the user as viewing (or, with ``leave``, no longer viewing) a session; the *other* viewers.

    None when presence cannot be known (Redis not configured or away): the page says so instead of
    claiming nobody else is looking.
    """
    me = request.user.get_username()
    try:
        if leave:
            presence_leave(phone=phone, viewer=me)
            return []
        viewers = presence_touch(phone=phone, viewer=me)
    except RedisUnavailable:
        return None
    return sorted(viewer for viewer in viewers if viewer != me)


# --- Views ------------------------------------------------------------------------------------


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _context(site: admin.AdminSite, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**site.each_context(request), "opts": OpsConsole._meta, **extra}


def session_changelist_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    """The list; a search by phone is POSTed, so the number stays out of URLs (access logs, history)."""
    _require(request, VIEW_PERMISSION)
    query = request.POST.get("q", "").strip() if request.method == "POST" else ""
    node = request.GET.get("node") or None
    customer = request.GET.get("customer") or None
    cursor = request.GET.get("cursor") or None
    search_error = None
    next_cursor = None
    if query:
        try:
            phone = normalize_phone(query)
        except ApplicationError as exc:
            sessions, search_error = [], exc.message
        else:
            found = session_get(phone=phone)
            sessions = [found] if found else []
    else:
        try:
            sessions, next_cursor = session_search(node=node, customer=customer, limit=PAGE_SIZE, cursor=cursor)
        except ApplicationError as exc:
            sessions, search_error = [], exc.message

    def link(**changes: Any) -> str:
        params = {"node": node, "customer": customer, **changes}  # never the searched phone
        return "?" + urlencode({key: value for key, value in params.items() if value})

    rows = [
        {
            "session": session,
            "masked_phone": mask_phone(session.phone),
            "url": reverse("admin:sessions_live_detail", args=[phone_ref(session.phone)]),
            "customer": customer_display(session),
            "countdown": ttl_countdown(session),
        }
        for session in sessions
    ]
    # Filter choices: the nodes the dashboard last counted (no extra Scan), MAIN_MENU and the current one.
    counted = (cache.get(SESSIONS_BY_NODE_KEY) or {}).get("counts", {})
    nodes = sorted({MAIN_MENU, *counted, *([node] if node else [])})
    context = _context(
        site,
        request,
        title="Live sessions",
        rows=rows,
        query=query,
        search_error=search_error,
        node_filters=[{"label": "All", "url": link(node=None, cursor=None), "selected": node is None}]
        + [{"label": name, "url": link(node=name, cursor=None), "selected": node == name} for name in nodes],
        customer_filters=[
            {"label": label, "url": link(customer=value, cursor=None), "selected": customer == value}
            for label, value in (("All", None), ("Known", CUSTOMER_KNOWN), ("Unknown", CUSTOMER_UNKNOWN))
        ],
        next_url=link(cursor=next_cursor) if next_cursor else None,
        first_url=link(cursor=None) if cursor else None,
        can_manage=request.user.has_perm(MANAGE_PERMISSION),
    )
    return TemplateResponse(request, "admin/sessions_app/live_sessions/change_list.html", context)


def _phone(ref: str) -> str:
    try:
        return phone_from_ref(ref)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _load(ref: str) -> Session:
    phone = _phone(ref)
    session = session_get(phone=phone)
    if session is None:
        raise Http404(ERR_NO_SESSION.format(phone=mask_phone(phone)))
    return session


def session_detail_view(request: HttpRequest, site: admin.AdminSite, ref: str) -> HttpResponse:
    _require(request, VIEW_PERMISSION)
    session = _load(ref)
    show_text = request.user.has_perm(MESSAGES_PERMISSION)
    context = _context(
        site,
        request,
        title=f"Session {mask_phone(session.phone)}",
        session=session,
        masked_phone=mask_phone(session.phone),
        customer=customer_display(session),
        countdown=ttl_countdown(session),
        cached_json=pretty_json(session.cached_data),
        session_json=pretty_json(session.session_data if show_text else customer_words_masked(session.session_data)),
        turns=conversation_turns(session, show_text=show_text),
        show_text=show_text,
        ref=ref,
        viewers=presence_viewers(request, session.phone),
        presence_url=reverse("admin:sessions_live_presence", args=[ref]),
        presence_refresh_ms=int(PRESENCE_REFRESH_SECONDS * 1000),
        actions=list(ACTIONS.values()),
        can_manage=request.user.has_perm(MANAGE_PERMISSION),
        changelist_url=reverse("admin:sessions_live_changelist"),
    )
    return TemplateResponse(request, "admin/sessions_app/live_sessions/detail.html", context)


@require_POST
def session_presence_view(request: HttpRequest, ref: str) -> JsonResponse:
    """The detail page's heartbeat (every PRESENCE_REFRESH_SECONDS) and its goodbye (``leave=1``)."""
    _require(request, VIEW_PERMISSION)
    try:
        normalized = phone_from_ref(ref)
    except ApplicationError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    viewers = presence_viewers(request, normalized, leave=request.POST.get("leave") == "1")
    return JsonResponse({"viewers": viewers, "available": viewers is not None})


def _log(request: HttpRequest, session: Session, action: SessionAction) -> None:
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=ContentType.objects.get_for_model(OpsConsole, for_concrete_model=False),
        object_id=hash_phone(session.phone),
        object_repr=f"Session {mask_phone(session.phone)}"[:200],
        action_flag=action.flag,
        change_message=f"{action.verb} (was at node {session.current_node}, version {session.version}).",
    )


def session_action_view(request: HttpRequest, site: admin.AdminSite, ref: str, action: str) -> HttpResponse:
    _require(request, MANAGE_PERMISSION)
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise Http404(f"Unknown action {action!r}.")
    session = _load(ref)
    detail_url = reverse("admin:sessions_live_detail", args=[ref])
    if request.method == "POST":
        try:
            expected = int(request.POST.get("version", ""))
        except ValueError:
            messages.error(request, ERR_BAD_VERSION)
            return HttpResponseRedirect(detail_url)
        try:
            if chosen.key == "expire":
                session_expire(phone=session.phone, expected_version=expected)
            elif chosen.key == "reset":
                session_reset(phone=session.phone, expected_version=expected)
            else:
                session_remove(phone=session.phone, expected_version=expected)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(detail_url)
        _log(request, session, chosen)
        messages.success(request, f"{chosen.verb}: {mask_phone(session.phone)}.")
        if chosen.key == "reset":
            return HttpResponseRedirect(detail_url)
        return HttpResponseRedirect(reverse("admin:sessions_live_changelist"))
    context = _context(
        site,
        request,
        title=f"{chosen.label}: are you sure?",
        session=session,
        masked_phone=mask_phone(session.phone),
        action=chosen,
        detail_url=detail_url,
        ref=ref,
    )
    return TemplateResponse(request, "admin/sessions_app/live_sessions/confirm.html", context)


def live_session_urls(site: Any) -> list[Any]:
    return [
        path(
            "ops/sessions/",
            site.admin_view(lambda request: session_changelist_view(request, site)),
            name="sessions_live_changelist",
        ),
        path(
            "ops/sessions/<str:ref>/",
            site.admin_view(lambda request, ref: session_detail_view(request, site, ref)),
            name="sessions_live_detail",
        ),
        path(
            "ops/sessions/<str:ref>/presence/",
            site.admin_view(session_presence_view),
            name="sessions_live_presence",
        ),
        path(
            "ops/sessions/<str:ref>/<str:action>/",
            site.admin_view(lambda request, ref, action: session_action_view(request, site, ref, action)),
            name="sessions_live_action",
        ),
    ]


if hasattr(admin.site, "add_urls"):
    admin.site.add_urls(live_session_urls)
    admin.site.add_ops_link("Live sessions", "sessions_live_changelist", permission=VIEW_PERMISSION, order=10)
