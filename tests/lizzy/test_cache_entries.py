"""The DynamoDB cache table on the ops console: entries with TTL, size and last write; invalidation."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from lizzy.cache_backend import DynamoDBCache
from lizzy.cache_entries import (
    ERR_EMPTY_PREFIX,
    CacheEntryRefused,
    cache_entries_invalidate_prefix,
    cache_entries_page,
    cache_entry_invalidate,
)

PAGE_URL = "/admin/ops/cache/"
INVALIDATE_URL = "/admin/ops/cache/invalidate/"


@pytest.fixture
def cache(dynamodb) -> DynamoDBCache:
    cache = DynamoDBCache("LizzyCache", {"TIMEOUT": 300})
    cache.set("pricing:mowers", {"HRX217": "499.00"})
    cache.set("pricing:trimmers", [1, 2, 3])
    cache.set("profile:+12065550100", {"name": "Jordan"}, timeout=None)
    return cache


def test_entries_show_key_ttl_size_and_last_write(cache):
    entries, cursor = cache_entries_page()
    assert cursor is None
    by_key = {entry.key: entry for entry in entries}
    assert set(by_key) == {":1:pricing:mowers", ":1:pricing:trimmers", ":1:profile:+12065550100"}
    assert 295 <= by_key[":1:pricing:mowers"].ttl_seconds <= 300
    assert by_key[":1:profile:+12065550100"].ttl_seconds is None
    assert by_key[":1:pricing:mowers"].size_bytes > len('{"HRX217":"499.00"}')
    assert by_key[":1:pricing:mowers"].last_write.endswith("Z")
    assert by_key[":1:profile:+12065550100"].display_key == ":1:profile:+1******0100"


def test_entries_page_with_a_cursor_and_filter_by_prefix(cache):
    first, cursor = cache_entries_page(limit=2)
    second, end = cache_entries_page(limit=2, cursor=cursor)
    assert (len(first), len(second), end) == (2, 1, None)
    assert {entry.key for entry in first + second} == {e.key for e in cache_entries_page()[0]}
    assert [entry.key for entry in cache_entries_page(prefix=":1:profile")[0]] == [":1:profile:+12065550100"]


def test_invalidate_one_and_a_prefix(cache):
    assert cache_entry_invalidate(key=":1:pricing:mowers") is True
    assert cache_entry_invalidate(key=":1:pricing:mowers") is False
    assert cache.get("pricing:mowers") is None
    assert cache_entries_invalidate_prefix(prefix=":1:pricing") == 1
    assert cache.get("pricing:trimmers") is None
    assert cache.get("profile:+12065550100") == {"name": "Jordan"}
    with pytest.raises(CacheEntryRefused, match=ERR_EMPTY_PREFIX[:30]):
        cache_entries_invalidate_prefix(prefix="")


@pytest.mark.django_db
def test_page_lists_cache_entries_even_without_redis(cache, settings, ops_admin_client):
    settings.REDIS_URL = None
    settings.LIZZY_SESSION_REDIS_URL = None

    html = ops_admin_client.get(PAGE_URL).content.decode()

    assert "Redis is not configured" in html
    # the default setup, not a fault: an info note, not the red error box
    assert 'class="info" id="redis-info"' in html
    assert 'id="redis-error"' not in html
    assert "errornote" not in html
    assert html.count('class="dynamodb-row"') == 3
    assert ":1:profile:+1******0100" in html
    assert "+12065550100" not in html.replace("key=%3A1%3Aprofile%3A%2B12065550100", "")


@pytest.mark.django_db
def test_invalidate_a_prefix_from_the_page_with_confirmation(cache, ops_admin_client, ops_admin):
    confirm = ops_admin_client.get(INVALIDATE_URL, {"source": "dynamodb", "prefix": ":1:pricing"})
    assert "Invalidate DynamoDB cache entries :1:pricing*?" in confirm.content.decode()
    assert cache.get("pricing:mowers") is not None

    response = ops_admin_client.post(INVALIDATE_URL, {"source": "dynamodb", "prefix": ":1:pricing"}, follow=True)

    assert "Invalidated 2 cache entries." in response.content.decode()
    assert cache.get("pricing:mowers") is None
    assert cache.get("profile:+12065550100") is not None
    assert LogEntry.objects.get().user == ops_admin


@pytest.mark.django_db
def test_incomplete_requests_are_a_clear_400(cache, ops_admin_client):
    response = ops_admin_client.post(INVALIDATE_URL, {"source": "memcached", "key": "x"})
    assert response.status_code == 400
    assert b"source=redis|dynamodb" in response.content
