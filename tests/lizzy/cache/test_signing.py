"""Nothing is unpickled that this product did not sign: forged, edited, moved and legacy values are misses.

Each test writes the table directly, as someone holding DynamoDB credentials but not SECRET_KEY could,
and checks the value is a miss, counted with its reason, and that ``pickle.loads`` never ran.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pytest

from lizzy.cache_backend.codec import SIGNING_SALT
from lizzy.cache_backend.serializers import pickle as pickle_serializer
from tests.lizzy.cache.helpers import errors, make_cache, put_raw, raw_item

RAN = []


class Payload:
    """Records that it was unpickled: what an attacker's ``__reduce__`` would turn into code execution."""

    def __reduce__(self):
        return (RAN.append, ("unpickled",))


@pytest.fixture
def cache(dynamodb):
    RAN.clear()
    return make_cache(TIMEOUT=300, OPTIONS={"ALIAS": "signing-test"})


@pytest.fixture
def loads_calls(monkeypatch):
    calls = []
    real = pickle.loads

    def recording(data, *args, **kwargs):
        calls.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(pickle_serializer.pickle, "loads", recording)
    return calls


def _attacker_signature(full_key: str, fmt: str, payload: bytes, secret: str) -> bytes:
    """Independent of the codec: Django's salted_hmac is HMAC-SHA256 keyed with sha256(salt + secret)."""
    key = hashlib.sha256((SIGNING_SALT + secret).encode()).digest()
    message = b"%d:%s|%s|" % (len(full_key.encode()), full_key.encode(), fmt.encode()) + payload
    return hmac.new(key, message, hashlib.sha256).digest()


def test_the_signature_is_the_documented_hmac(cache, settings):
    # given: a value the backend wrote
    cache.set("k", [1, 2])
    item = raw_item(cache, "k")
    # then: anyone holding SECRET_KEY can recompute its signature from the documented layout
    assert item["sig"] == _attacker_signature(":1:k", "pickle", item["data"], settings.SECRET_KEY)


def test_an_unsigned_pickle_is_a_miss_and_never_unpickled(cache, loads_calls):
    put_raw(cache, {"PK": "CACHE#:1:k", "SK": "DATA", "fmt": "pickle", "data": pickle.dumps(Payload())})
    before = errors(cache, "get", "unsigned")
    assert cache.get("k", "miss") == "miss"
    assert cache.has_key("k") is False
    assert cache.get_many(["k"]) == {}
    assert (RAN, loads_calls) == ([], [])
    assert errors(cache, "get", "unsigned") == before + 1


def test_an_edited_value_is_a_miss_and_never_unpickled(cache, loads_calls):
    cache.set("k", "genuine")
    item = raw_item(cache, "k")
    item["data"] = pickle.dumps(Payload())  # the genuine signature, another value
    put_raw(cache, item)
    before = errors(cache, "get", "bad_signature")
    assert cache.get("k", "miss") == "miss"
    assert (RAN, loads_calls) == ([], [])
    assert errors(cache, "get", "bad_signature") == before + 1


def test_a_value_signed_with_another_key_is_a_miss(cache, loads_calls):
    data = pickle.dumps(Payload())
    sig = _attacker_signature(":1:k", "pickle", data, "a guess at the secret")
    put_raw(cache, {"PK": "CACHE#:1:k", "SK": "DATA", "fmt": "pickle", "data": data, "sig": sig})
    assert cache.get("k", "miss") == "miss"
    assert (RAN, loads_calls) == ([], [])


def test_a_genuine_value_moved_to_another_key_is_a_miss(cache, loads_calls):
    # given: a value signed for the key "price:cheap", copied under the key "price:dear"
    cache.set("price:cheap", "1.00")
    item = raw_item(cache, "price:cheap")
    put_raw(cache, {**item, "PK": "CACHE#:1:price:dear"})
    before = errors(cache, "get", "bad_signature")
    # then: it is served only under the key it was signed for
    assert cache.get("price:dear", "miss") == "miss"
    assert cache.get("price:cheap") == "1.00"
    assert errors(cache, "get", "bad_signature") == before + 1
    assert len(loads_calls) == 1  # the genuine read only


def test_a_compressed_value_is_verified_before_it_is_decompressed(cache, monkeypatch):
    import zlib

    from lizzy.cache_backend import codec

    decompressed = []
    monkeypatch.setattr(codec.zlib, "decompress", lambda data: decompressed.append(data) or zlib.decompress(data))
    bomb = zlib.compress(b"\0" * 10_000_000)
    put_raw(cache, {"PK": "CACHE#:1:k", "SK": "DATA", "fmt": "pickle+zlib", "data": bomb, "sig": b"x" * 32})
    assert cache.get("k", "miss") == "miss"
    assert decompressed == []


def test_secret_key_rotation_keeps_values_readable_through_the_fallbacks(cache, settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "old-secret-" + "x" * 40, []
    cache.set("k", {"v": 1})
    # rotate: the old key becomes a fallback, the value still verifies; new writes use the new key
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-secret-" + "y" * 40, ["old-secret-" + "x" * 40]
    assert cache.get("k") == {"v": 1}
    cache.set("k2", "fresh")
    assert raw_item(cache, "k2")["sig"] == _attacker_signature(
        ":1:k2", "pickle", raw_item(cache, "k2")["data"], settings.SECRET_KEY
    )
    # retire the old key: its values are misses
    settings.SECRET_KEY_FALLBACKS = []
    assert cache.get("k", "miss") == "miss"
    assert cache.get("k2") == "fresh"


def test_a_legacy_json_item_of_the_old_backend_is_a_miss_that_add_and_set_replace(cache):
    # the JSON-only backend before issue 17 wrote {"data": "<json>"} without fmt or sig
    put_raw(cache, {"PK": "CACHE#:1:k", "SK": "DATA", "data": '{"a": 1}'})
    assert cache.get("k", "miss") == "miss"
    assert cache.add("k", "new") is True  # a value get() would never serve does not block add()
    assert cache.get("k") == "new"
    assert cache.add("k", "newer") is False


def test_a_json_cache_never_unpickles_even_a_genuine_pickle(dynamodb, loads_calls):
    pickled = make_cache(OPTIONS={"ALIAS": "p"})
    as_json = make_cache(OPTIONS={"ALIAS": "j", "SERIALIZER": "json"})
    pickled.set("k", ("a", 1))
    before = errors(as_json, "get", "wrong_format")
    assert as_json.get("k", "miss") == "miss"
    assert loads_calls == []
    assert errors(as_json, "get", "wrong_format") == before + 1


def test_a_pickled_class_that_no_longer_exists_is_a_miss_not_an_error(cache, monkeypatch):
    from tests.lizzy.cache import helpers

    cache.set("gone", helpers.Clock())  # pickled by reference to tests.lizzy.cache.helpers.Clock
    monkeypatch.delattr(helpers, "Clock")  # a release later, the class is gone
    before = errors(cache, "get", "undecodable")
    assert cache.get("gone", "miss") == "miss"
    assert errors(cache, "get", "undecodable") == before + 1
