"""The ops console's "Cached entries" page: Redis session keys and the DynamoDB cache table.

Both lists page with cursors (Redis SCAN, never KEYS; a DynamoDB Scan with LastEvaluatedKey) and
show key, TTL remaining, size and last write. Invalidating one entry or a prefix asks for
confirmation, calls one service and is written to the admin log. Looking needs
``lizzy.view_live_sessions``; invalidating needs ``lizzy.manage_live_sessions``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse

from lizzy.cache_backend import CACHE_TABLE
from lizzy.cache_entries import cache_entries_invalidate_prefix, cache_entries_page, cache_entry_invalidate
from lizzy.errors import ApplicationError
from lizzy.models import OpsConsole
from lizzy.observability.logs import redact
from lizzy.phone import MAX_PHONE_INPUT, hash_phone, mask_phone, normalize_phone, phone_from_ref, phone_ref
from lizzy.redis import SESSION_KEY, key, redis_url
from sessions_app.admin_panels import session_cache_context
from sessions_app.admin_search import HttpResponseSeeOther
from sessions_app.admin_sessions import MANAGE_PERMISSION, VIEW_PERMISSION, _require
from sessions_app.selectors import hot_tier_entries
from sessions_app.services.hot_tier import hot_tier_check_prefix, hot_tier_invalidate, hot_tier_invalidate_prefix

PAGE_SIZE = 50
SOURCES = {"redis": "Redis session key", "dynamodb": "DynamoDB cache entry"}
SOURCES_PLURAL = {"redis": "Redis session keys", "dynamodb": "DynamoDB cache entries"}
ERR_BAD_REQUEST = "Say what to invalidate: source=redis|dynamodb and key=… or prefix=…."
INFO_REDIS_OFF = (
    "Redis is not configured (no REDIS_URL), so sessions have no Redis copies: every read goes to DynamoDB. "
    "Nothing to show here; that is the default setup, not a fault."
)


def _context(site: admin.AdminSite, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**site.each_context(request), "opts": OpsConsole._meta, **extra}


def _redis_section(query: str, cursor: int) -> dict[str, Any]:
    if not redis_url():
        return {"info": INFO_REDIS_OFF, "entries": []}
    try:
        prefix = hot_tier_check_prefix(prefix=query)
        entries, next_cursor = hot_tier_entries(phone_prefix=prefix, cursor=cursor, limit=PAGE_SIZE)
    except ApplicationError as exc:
        return {"error": exc.message}
    return {"entries": entries, "next_cursor": next_cursor}


def _dynamodb_section(query: str, cursor: str | None) -> dict[str, Any]:
    try:
        entries, next_cursor = cache_entries_page(prefix=query, cursor=cursor, limit=PAGE_SIZE)
    except ApplicationError as exc:
        return {"error": exc.message}
    return {"entries": entries, "next_cursor": next_cursor}


def _sealed_filter_redirect(request: HttpRequest, typed: str, response: type[HttpResponseRedirect]) -> HttpResponse:
    """This page again, with the typed phone prefix sealed into ``rqr`` (and the Redis paging reset)."""
    params = request.GET.copy()
    for name in ("rq", "rqr", "rc"):
        params.pop(name, None)
    typed = typed.strip()[:MAX_PHONE_INPUT]
    if typed:
        params["rqr"] = phone_ref(typed)
    query = params.urlencode()
    return response(request.path + (f"?{query}" if query else ""))


def cache_entries_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    _require(request, VIEW_PERMISSION)
    # The Redis filter takes a phone prefix, up to a whole number: its form is POSTed and the prefix sealed
    # (phone_ref) into ``rqr``, so no number reaches a URL, an access log or the browser's history.
    if request.method == "POST":
        return _sealed_filter_redirect(request, request.POST.get("rq", ""), HttpResponseSeeOther)
    if request.GET.get("rq", "").strip():  # typed into the address bar, or an old bookmark
        return _sealed_filter_redirect(request, request.GET["rq"], HttpResponseRedirect)
    redis_query = ""
    if request.GET.get("rqr"):
        try:
            redis_query = phone_from_ref(request.GET["rqr"])
        except ApplicationError:
            redis_query = ""
    dynamodb_query = request.GET.get("dq", "").strip()
    try:
        redis_cursor = int(request.GET.get("rc") or 0)
    except ValueError:
        redis_cursor = 0
    dynamodb_cursor = request.GET.get("dc") or None

    def link(**changes: Any) -> str:
        params = {"rqr": phone_ref(redis_query) if redis_query else "", "dq": dynamodb_query, **changes}
        return "?" + urlencode({name: value for name, value in params.items() if value})

    redis = _redis_section(redis_query, redis_cursor)
    dynamodb = _dynamodb_section(dynamodb_query, dynamodb_cursor)
    if redis.get("next_cursor"):
        redis["next_url"] = link(rc=redis["next_cursor"], dc=dynamodb_cursor)
    if dynamodb.get("next_cursor"):
        dynamodb["next_url"] = link(rc=redis_cursor or None, dc=dynamodb["next_cursor"])
    context = _context(
        site,
        request,
        title="Cached entries",
        redis=redis,
        dynamodb=dynamodb,
        redis_query=redis_query,
        dynamodb_query=dynamodb_query,
        cache_table=CACHE_TABLE.name,
        stats=session_cache_context(request),
        can_manage=request.user.has_perm(MANAGE_PERMISSION),
        invalidate_url=reverse("admin:sessions_cache_invalidate"),
        redis_filter_action="?" + urlencode({"dq": dynamodb_query} if dynamodb_query else {}),
    )
    return TemplateResponse(request, "admin/sessions_app/cache_entries/list.html", context)


def _target(params: Any) -> tuple[str, str, str] | None:
    """(source, "key"|"prefix", value) from the query or form, or None when incomplete."""
    source = params.get("source", "")
    if source == "redis" and params.get("ref"):  # a link names the phone by reference (no number in URLs)
        try:
            return source, "key", phone_from_ref(params["ref"])
        except ApplicationError:
            return None
    if source == "redis" and params.get("prefix_ref"):  # the same for a phone prefix
        try:
            return source, "prefix", phone_from_ref(params["prefix_ref"])
        except ApplicationError:
            return None
    for kind in ("key", "prefix"):
        value = params.get(kind, "").strip()
        if source in SOURCES and value:
            return source, kind, value
    return None


def _describe(source: str, kind: str, value: str) -> str:
    """What the confirmation and the admin log say: phones masked, cache keys redacted."""
    if source == "redis":
        shown = key(SESSION_KEY, phone=mask_phone(value)) if kind == "key" else key(SESSION_KEY, phone=value) + "*"
    else:
        shown = redact(value) + ("*" if kind == "prefix" else "")
    return f"{(SOURCES_PLURAL if kind == 'prefix' else SOURCES)[source]} {shown}"


def _invalidate(source: str, kind: str, value: str) -> str:
    """Run the service; the success message (with pluralised counts)."""
    if source == "redis" and kind == "key":
        phone = normalize_phone(value)
        found = hot_tier_invalidate(phone=phone)
        return f"Invalidated the Redis copy of {mask_phone(phone)}." if found else "That Redis key was already gone."
    if source == "redis":
        result = hot_tier_invalidate_prefix(prefix=value)
        message = f"Invalidated {result.removed} Redis session key{pluralize(result.removed)}."
        if result.kept_dirty:
            message += f" Kept {result.kept_dirty} with write-behind writes not yet in DynamoDB; flush, then try again."
        return message
    if kind == "key":
        found = cache_entry_invalidate(key=value)
        return "Invalidated 1 cache entry." if found else "That cache entry was already gone."
    removed = cache_entries_invalidate_prefix(prefix=value)
    return f"Invalidated {removed} cache entr{pluralize(removed, 'y,ies')}."


def _log(request: HttpRequest, description: str, message: str) -> None:
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=ContentType.objects.get_for_model(OpsConsole, for_concrete_model=False),
        object_id=hash_phone(description)[:32],
        object_repr=description[:200],
        action_flag=DELETION,
        change_message=message[:1000],
    )


def cache_invalidate_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    _require(request, MANAGE_PERMISSION)
    target = _target(request.POST if request.method == "POST" else request.GET)
    if target is None:
        return HttpResponseBadRequest(ERR_BAD_REQUEST)
    source, kind, value = target
    description = _describe(source, kind, value)
    back = reverse("admin:sessions_cache_entries")
    if request.method == "POST":
        try:
            message = _invalidate(source, kind, value)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(back)
        _log(request, description, f"Invalidated {description}: {message}")
        messages.success(request, message)
        return HttpResponseRedirect(back)
    context = _context(
        site,
        request,
        title="Invalidate: are you sure?",
        description=description,
        source=source,
        kind=kind,
        value=value,
        back_url=back,
    )
    return TemplateResponse(request, "admin/sessions_app/cache_entries/confirm.html", context)


def cache_entry_urls(site: Any) -> list[Any]:
    return [
        path(
            "ops/cache/",
            site.admin_view(lambda request: cache_entries_view(request, site)),
            name="sessions_cache_entries",
        ),
        path(
            "ops/cache/invalidate/",
            site.admin_view(lambda request: cache_invalidate_view(request, site)),
            name="sessions_cache_invalidate",
        ),
    ]


if hasattr(admin.site, "add_urls"):
    admin.site.add_urls(cache_entry_urls)
    admin.site.add_ops_link("Cached entries", "sessions_cache_entries", permission=VIEW_PERMISSION, order=15)
