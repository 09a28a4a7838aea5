"""The product's admin site: Django's, plus the ops dashboard on the home page and extra ops pages.

Installed through ``lizzy.apps.LizzyAdminConfig`` (``default_site``), so every ``@admin.register``
in the product lands here unchanged. Other modules add pages with ``admin.site.add_urls(...)`` and
entries in the "Ops console" section of the app list with ``admin.site.add_ops_link(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse, reverse_lazy

from lizzy.admin_login import LockoutAdminAuthenticationForm, device_cookie_set
from lizzy.dashboard import dashboard_render

OPS_APP_LABEL = "ops_console"


@dataclass(frozen=True)
class OpsLink:
    name: str
    url_name: str
    permission: str | None = None
    order: int = 100


class LizzyAdminSite(admin.AdminSite):
    site_header = "Lizzy operations"
    site_title = "Lizzy admin"
    index_title = "Operations dashboard"
    site_url = reverse_lazy("api-root")  # "View site": the API root (the product has no public site of its own)
    index_template = "admin/lizzy/index.html"
    login_form = LockoutAdminAuthenticationForm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url_providers: list[Callable[[LizzyAdminSite], list[URLPattern]]] = []
        self._ops_links: list[OpsLink] = []

    def add_urls(self, provider: Callable[[LizzyAdminSite], list[URLPattern]]) -> None:
        """``provider(site)`` returns URL patterns (wrap views in ``site.admin_view``)."""
        self._url_providers.append(provider)

    def add_ops_link(self, name: str, url_name: str, *, permission: str | None = None, order: int = 100) -> None:
        self._ops_links = [link for link in self._ops_links if link.url_name != url_name]
        self._ops_links.append(OpsLink(name, url_name, permission, order))

    def actions_require_permissions(self) -> list[str]:
        """Give every admin action that declares no permission the model's ``change`` permission.

        Django offers an action without ``allowed_permissions`` to anyone who can see the changelist, so
        a viewer could run it (django-celery-beat's run/enable/disable tasks declare none). The product's
        own actions declare theirs; this closes the others. Returns ``app.model.action`` names changed.
        """
        changed = []
        for model, model_admin in self._registry.items():
            for action in model_admin.actions or ():
                function = action if callable(action) else getattr(type(model_admin), action, None)
                if function is not None and not getattr(function, "allowed_permissions", None):
                    function.allowed_permissions = ("change",)
                    changed.append(f"{model._meta.label_lower}.{getattr(function, '__name__', action)}")
        return changed

    def get_urls(self) -> list[Any]:
        extra: list[Any] = []
        for provider in self._url_providers:
            extra.extend(provider(self))
        return extra + super().get_urls()

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list
        links = [
            link
            for link in sorted(self._ops_links, key=lambda link: (link.order, link.name))
            if link.permission is None or request.user.has_perm(link.permission)
        ]
        if links:
            models = [
                {
                    "name": link.name,
                    "object_name": link.url_name,
                    "admin_url": reverse(f"{self.name}:{link.url_name}"),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True},
                }
                for link in links
            ]
            app_list.insert(
                0,
                {
                    "name": "Ops console",
                    "app_label": OPS_APP_LABEL,
                    "app_url": models[0]["admin_url"],
                    "has_module_perms": True,
                    "models": models,
                },
            )
        return app_list

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().login(request, extra_context)
        device_cookie_set(request=request, response=response)  # a known device is not locked out by strangers
        return response

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"dashboard_panels": dashboard_render(request=request), **(extra_context or {})}
        return super().index(request, extra_context=context)
