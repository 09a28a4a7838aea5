"""Dashboard panels of the session store: mode, hit rate and p95 per tier, write-behind, breaker."""

from __future__ import annotations

import re

import pytest

from lizzy import metrics
from sessions_app.admin_panels import hit_rate
from sessions_app.selectors import session_get
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.write_behind import sessions_flush, write_behind_fence_raise
from sessions_app.services.store_modes import store_mode_set
from tests.sessions_app.factories import SEED_PHONE

pytestmark = pytest.mark.django_db


def panel(html, key):
    match = re.search(rf'<div class="module" id="panel-{key}">(.*?)</div>\s*(?=<div class="module"|</div>)', html, re.S)
    assert match, f"panel {key} missing"
    return match.group(1)


def test_hit_rate_is_unknown_before_the_first_lookup():
    assert hit_rate(3, 1) == 0.75
    assert hit_rate(0, 0) is None


def test_store_mode_panel_links_to_the_mode_page_for_admins_only(
    dynamodb, settings, ops_admin_client, ops_viewer_client
):
    store_mode_set(mode="cached", actor="test", reason="hot tier on")
    pinned = panel(ops_admin_client.get("/admin/").content.decode(), "store_mode")
    assert '<strong id="store-mode">dynamodb_only</strong>' in pinned  # the test settings pin the mode
    assert "pinned by LIZZY_SESSION_STORE_MODE" in pinned
    settings.LIZZY_SESSION_STORE_MODE = None

    admin_html = panel(ops_admin_client.get("/admin/").content.decode(), "store_mode")
    viewer_html = panel(ops_viewer_client.get("/admin/").content.decode(), "store_mode")

    assert '<strong id="store-mode">cached</strong>' in admin_html
    assert "hot tier on" in admin_html
    assert 'href="/admin/sessions_app/sessionstoresetting/1/change/"' in admin_html
    assert '<strong id="store-mode">cached</strong>' in viewer_html
    assert "store-mode-change" not in viewer_html


def test_hit_rate_and_p95_per_tier_come_from_this_process(dynamodb, session_redis, use_mode, ops_admin_client):
    # given a hot-tier miss and two hits
    use_mode("cached")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    session_redis.delete(next(session_redis.scan_iter(match="*session:*")))
    for _ in range(3):
        session_get(phone=SEED_PHONE)
    hits = metrics.sample_value("lizzy_session_cache_requests_total", {"result": "hit"})
    misses = metrics.sample_value("lizzy_session_cache_requests_total", {"result": "miss"})

    html = panel(ops_admin_client.get("/admin/").content.decode(), "session_cache")

    assert f"<td>{int(hits)}</td><td>{int(misses)}</td>" in html
    assert f'<td id="session-hit-rate">{round(hits / (hits + misses) * 100)} %</td>' in html
    tiers = dict(re.findall(r'data-tier="(\w+)">.*?class="tier-p95">([\d.]+) ms', html))
    assert set(tiers) >= {"redis", "dynamodb"}


def test_write_behind_panel_shows_backlog_lag_and_last_flush(dynamodb, session_redis, use_mode, ops_admin_client):
    use_mode("cached_write_behind")
    for n in range(3):
        session_save(session=session_new(phone=f"+1206555010{n}"), expected_version=None)

    before = panel(ops_admin_client.get("/admin/").content.decode(), "write_behind")
    assert '<td id="write-behind-backlog">3</td>' in before
    assert re.search(r'<td id="write-behind-lag">[\d.]+ s</td>', before)
    assert '<td id="write-behind-last">never</td>' in before

    sessions_flush()

    after = panel(ops_admin_client.get("/admin/").content.decode(), "write_behind")
    assert '<td id="write-behind-backlog">0</td>' in after
    assert '<td id="write-behind-lag">-</td>' in after
    assert "flushed, 3 written" in after
    assert "version-checked" not in after  # Redis was healthy: no fence

    # after a session went to DynamoDB without Redis, the next flush says it checked versions
    write_behind_fence_raise()
    session_save(session=session_new(phone="+12065550109"), expected_version=None)
    sessions_flush()
    fenced = panel(ops_admin_client.get("/admin/").content.decode(), "write_behind")
    assert "1 version-checked (fence up: a write bypassed Redis)" in fenced


def test_breaker_panel_turns_red_when_the_breaker_opens(dynamodb, session_redis, ops_admin_client):
    assert ">closed</span>" in panel(ops_admin_client.get("/admin/").content.decode(), "breaker")
    for _ in range(redis_breaker.threshold):
        redis_breaker.failure()

    html = panel(ops_admin_client.get("/admin/").content.decode(), "breaker")

    assert '<span id="breaker-state" class="lizzy-badge lizzy-badge-firing">open</span>' in html


def test_without_redis_the_write_behind_panel_says_so(dynamodb, settings, ops_admin_client):
    settings.REDIS_URL = None
    settings.LIZZY_SESSION_REDIS_URL = None

    response = ops_admin_client.get("/admin/")

    assert response.status_code == 200
    assert "Redis is not configured" in panel(response.content.decode(), "write_behind")
