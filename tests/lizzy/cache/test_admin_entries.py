"""The ops console's "Cached entries" page with pickled values: listed, sized, invalidated, never unpickled."""

from __future__ import annotations

import re
import warnings
from urllib.parse import quote

import pytest
from django.core.cache import CacheKeyWarning
from django.http import HttpResponse

from lizzy.cache_backend import cache_pk
from lizzy.cache_backend.serializers import pickle as pickle_serializer
from lizzy.cache_entries import cache_entries_page, cache_entry_invalidate
from tests.lizzy.cache.helpers import make_cache, put_raw, raw_item

PAGE_URL = "/admin/ops/cache/"
INVALIDATE_URL = "/admin/ops/cache/invalidate/"
LONG_KEY = "report:+12065550100:" + "r" * 3000


@pytest.fixture
def cache(dynamodb, monkeypatch):
    cache = make_cache(TIMEOUT=300, OPTIONS={"ALIAS": "LizzyCache"})
    cache.set("page:/dealers/7", HttpResponse("<h1>Dealer 7</h1>"))
    cache.set("quote", ("HRX217", b"\x00\x01", {1: "a"}))
    cache.set("catalog", {"rows": [{"model": "HRX217"}] * 4000})  # compressed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        cache.set(LONG_KEY, "long")

    def refuse(*args, **kwargs):
        raise AssertionError("the ops console unpickled a cache value")

    monkeypatch.setattr(pickle_serializer.pickle, "loads", refuse)
    return cache


def test_entries_list_pickled_values_with_sizes_and_the_whole_long_key(cache):
    entries, cursor = cache_entries_page()
    by_key = {entry.key: entry for entry in entries}
    assert cursor is None
    assert set(by_key) == {":1:page:/dealers/7", ":1:quote", ":1:catalog", ":1:" + LONG_KEY}
    assert by_key[":1:catalog"].size_bytes < 10_000  # the compressed size DynamoDB stores and bills
    assert "+12065550100" not in by_key[":1:" + LONG_KEY].display_key  # redacted, like every key


@pytest.mark.django_db
def test_the_page_shows_them_without_unpickling(cache, ops_admin_client):
    html = ops_admin_client.get(PAGE_URL).content.decode()
    assert html.count('class="dynamodb-row"') == 4
    assert ":1:page:/dealers/7" in html
    assert ":1:report:+1******0100:rrr" in html


@pytest.mark.django_db
def test_a_long_key_is_invalidated_from_the_page_by_its_whole_key(cache, ops_admin_client):
    html = ops_admin_client.get(PAGE_URL).content.decode()
    links = re.findall(r'href="([^"]*source=dynamodb&amp;key=[^"]*)"', html)
    (link,) = [link for link in links if "report" in link]
    assert quote(":1:" + LONG_KEY, safe="") in link
    response = ops_admin_client.post(INVALIDATE_URL, {"source": "dynamodb", "key": ":1:" + LONG_KEY}, follow=True)
    assert response.status_code == 200
    assert raw_item(cache, LONG_KEY) is None
    assert raw_item(cache, "quote") is not None


def test_invalidating_a_long_key_deletes_the_hashed_item(cache):
    assert cache_entry_invalidate(key=":1:" + LONG_KEY) is True
    assert cache_entry_invalidate(key=":1:" + LONG_KEY) is False


@pytest.mark.django_db
def test_the_errors_column_counts_rejected_values(cache, ops_admin_client):
    cache.get("quote-miss")  # the row appears with this process's first lookup
    put_raw(cache, {"PK": cache_pk(":1:forged"), "SK": "DATA", "fmt": "pickle", "data": b"\x80", "sig": b"0" * 32})
    html = ops_admin_client.get(PAGE_URL).content.decode()
    before = int(re.search(r'data-cache="LizzyCache">.*?class="cache-errors">(\d+)<', html, re.S).group(1))
    assert cache.get("forged", "miss") == "miss"
    html = ops_admin_client.get(PAGE_URL).content.decode()
    after = int(re.search(r'data-cache="LizzyCache">.*?class="cache-errors">(\d+)<', html, re.S).group(1))
    assert after == before + 1
