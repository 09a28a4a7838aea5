"""``/api/v1/`` lists the API (no 404), the admin's "View site" leads there, ``/api/docs/`` needs no internet."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from lizzy.apis import API_ROOT_ENDPOINTS

pytestmark = pytest.mark.django_db


def api_collection_paths() -> set[str]:
    """Every /api/v1/ route without a path parameter, from the URLconf itself (not from the API root)."""
    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/") and "<" not in route:
                found.add("/" + route)

    walk(get_resolver().url_patterns, "")
    return found - {"/api/v1/"}


def test_the_api_root_needs_a_token(anonymous_client):
    assert anonymous_client.get("/api/v1/").status_code == 401


def test_the_api_root_lists_every_collection_endpoint_and_none_of_them_404s(api_client, dynamodb):
    response = api_client.get("/api/v1/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(API_ROOT_ENDPOINTS)
    paths = {urlparse(url).path for url in body.values()}
    assert api_collection_paths() <= paths, "an endpoint is missing from the API root"
    for key, url in body.items():
        assert url.startswith("http://testserver/"), url
        answered = api_client.get(urlparse(url).path)
        # GET everywhere except the webhook (POST only) and the event stream (answered, not read here)
        assert answered.status_code in (200, 405), (key, url, answered.status_code)


def test_the_admins_view_site_link_opens_the_api_root(ops_admin_client):
    page = ops_admin_client.get(reverse("admin:index")).content.decode()

    link = re.search(r'<a href="([^"]+)">View site</a>', page)
    assert link, "no View site link in the admin header"
    assert link.group(1) == "/api/v1/"
    answered = ops_admin_client.get(link.group(1))  # the staff session is enough, as for /api/docs/
    assert answered.status_code == 200
    assert "sessions" in answered.json()


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_api_docs_load_swagger_ui_from_the_project_only(ops_admin_client):
    response = ops_admin_client.get("/api/docs/")

    assert response.status_code == 200
    parser = _Assets()
    parser.feed(response.content.decode())
    assert len(parser.urls) >= 4, parser.urls  # css, favicon, bundle, preset, our setup script
    static = "/" + settings.STATIC_URL.lstrip("/")
    for url in parser.urls:
        parsed = urlparse(url)
        assert not parsed.netloc, f"{url} is loaded from outside the project"
        assert not parsed.scheme, f"{url} is loaded from outside the project"
        if parsed.path.startswith(static):
            assert finders.find(parsed.path.removeprefix(static)), f"{url} is not one of the project's static files"
        else:
            assert ops_admin_client.get(url).status_code == 200, url
    assert "<script>" not in response.content.decode(), "inline script: a Content-Security-Policy would block it"


def test_api_docs_setup_script_points_at_the_local_schema(ops_admin_client):
    script = ops_admin_client.get("/api/docs/?script=").content.decode()

    assert "/api/schema/" in script
    assert not re.search(r"https?://", script), "the setup script reaches outside the project"
