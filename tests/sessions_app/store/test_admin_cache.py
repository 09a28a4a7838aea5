"""The cached entries page, Redis side: session keys by SCAN, invalidate one or a prefix, guards."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.contrib.admin.models import DELETION, LogEntry

from sessions_app.selectors import hot_tier_entries, session_get
from sessions_app.services.hot_tier import (
    ERR_BAD_PREFIX,
    ERR_STORE_OF_RECORD,
    CacheInvalidationRefused,
    hot_tier_invalidate_prefix,
)
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.write_behind import sessions_flush

pytestmark = pytest.mark.django_db
PAGE_URL = "/admin/ops/cache/"
INVALIDATE_URL = "/admin/ops/cache/invalidate/"
PHONES = ["+12065550100", "+12065550101", "+12065550102", "+14155550100"]


def redis_key(settings, phone):
    return f"{settings.LIZZY_REDIS_PREFIX}session:{phone}"


@pytest.fixture
def cached_sessions(dynamodb, session_redis, use_mode):
    use_mode("cached")
    for phone in PHONES:
        session_save(session=session_new(phone=phone), expected_version=None)
    return PHONES


def test_page_lists_session_keys_masked_with_ttl_size_and_last_write(cached_sessions, ops_admin_client, settings):
    html = ops_admin_client.get(PAGE_URL).content.decode()

    assert html.count('class="redis-row"') == 4
    assert f"{settings.LIZZY_REDIS_PREFIX}session:+1******0100" in html
    visible = re.sub(r'(href|value)="[^"]*"', "", html)
    assert not any(phone in visible for phone in PHONES)  # only inside links and forms
    row = re.search(r'<tr class="redis-row">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r"<td>(8\d\d|900) s</td>", row)  # the session's 15 minutes, counting down
    assert "bytes</td>" in row
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>", row)  # the console's one timestamp format


def test_prefix_filter_and_scan_paging(cached_sessions, ops_admin_client):
    html = ops_admin_client.post(PAGE_URL, {"rq": "+1415"}, follow=True).content.decode()
    assert html.count('class="redis-row"') == 1
    # Paging by SCAN cursor visits every key once
    seen, cursor = [], 0
    while True:
        entries, cursor = hot_tier_entries(cursor=cursor, limit=1)
        seen.extend(entry.phone for entry in entries)
        if cursor is None:
            break
    assert sorted(set(seen)) == sorted(PHONES)


def test_invalidate_one_asks_then_drops_only_the_redis_copy_and_logs_it(
    cached_sessions, ops_admin_client, ops_admin, session_redis, settings
):
    phone = PHONES[0]
    confirm = ops_admin_client.get(INVALIDATE_URL, {"source": "redis", "key": phone})
    assert confirm.status_code == 200
    assert "session:+1******0100" in confirm.content.decode()
    assert session_redis.exists(redis_key(settings, phone))  # a GET changes nothing

    response = ops_admin_client.post(INVALIDATE_URL, {"source": "redis", "key": phone}, follow=True)

    assert "Invalidated the Redis copy of +1******0100." in response.content.decode()
    assert not session_redis.exists(redis_key(settings, phone))
    assert session_get(phone=phone) is not None  # DynamoDB still has it; the read fills Redis again
    assert session_redis.exists(redis_key(settings, phone))
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag) == (ops_admin, DELETION)
    assert phone not in entry.object_repr + entry.change_message


def test_invalidate_a_prefix_removes_only_matching_keys(cached_sessions, ops_admin_client, session_redis, settings):
    response = ops_admin_client.post(INVALIDATE_URL, {"source": "redis", "prefix": "+1206"}, follow=True)

    assert "Invalidated 3 Redis session keys." in response.content.decode()
    assert [session_redis.exists(redis_key(settings, phone)) for phone in PHONES] == [0, 0, 0, 1]
    assert LogEntry.objects.count() == 1


def test_a_copy_with_unflushed_writes_is_kept(dynamodb, session_redis, use_mode, ops_admin_client, settings):
    use_mode("cached_write_behind")
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)
    session_save(session=session_new(phone=PHONES[1]), expected_version=None)
    html = ops_admin_client.get(PAGE_URL).content.decode()
    assert html.count("<strong>yes</strong>") == 2
    assert 'class="invalidate-link"' not in html.split('id="dynamodb-entries"')[0]

    one = ops_admin_client.post(INVALIDATE_URL, {"source": "redis", "key": PHONES[0]}, follow=True)
    assert "not yet flushed to DynamoDB; it was kept" in one.content.decode()
    assert hot_tier_invalidate_prefix(prefix="+1206").kept_dirty == 2
    assert session_redis.exists(redis_key(settings, PHONES[0]))
    assert not LogEntry.objects.exists()

    sessions_flush()
    assert hot_tier_invalidate_prefix(prefix="+1206").removed == 2


@pytest.mark.parametrize("mode", ["redis_only", "parallel"])
def test_refused_where_redis_is_the_store_of_record(
    mode, dynamodb, session_redis, use_mode, ops_admin_client, settings
):
    use_mode(mode)
    session_save(session=session_new(phone=PHONES[0]), expected_version=None)

    response = ops_admin_client.post(INVALIDATE_URL, {"source": "redis", "key": PHONES[0]}, follow=True)

    assert ERR_STORE_OF_RECORD.format(mode=mode).split(":")[0] in response.content.decode()
    assert session_get(phone=PHONES[0]) is not None
    assert not LogEntry.objects.exists()


def test_bad_prefixes_are_refused(cached_sessions, ops_admin_client):
    with pytest.raises(CacheInvalidationRefused, match="digits only"):
        hot_tier_invalidate_prefix(prefix="*")
    with pytest.raises(CacheInvalidationRefused, match="at least"):
        hot_tier_invalidate_prefix(prefix="+")
    html = ops_admin_client.post(PAGE_URL, {"rq": "1?2"}, follow=True).content.decode()
    assert ERR_BAD_PREFIX.format(prefix="1?2").replace("'", "&#x27;") in html


def test_viewers_see_entries_but_cannot_invalidate(cached_sessions, ops_viewer_client, session_redis, settings):
    html = ops_viewer_client.get(PAGE_URL).content.decode()
    assert html.count('class="redis-row"') == 4
    assert "invalidate-link" not in html
    assert ops_viewer_client.post(INVALIDATE_URL, {"source": "redis", "prefix": "+1"}).status_code == 403
    assert ops_viewer_client.get(INVALIDATE_URL + "?source=redis&key=" + quote(PHONES[0])).status_code == 403
    assert all(session_redis.exists(redis_key(settings, phone)) for phone in PHONES)
