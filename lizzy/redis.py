"""The one door to Redis for sessions, events, presence, the write-behind dirty set and locks.

Every key format is a constant here, every multi-step change is a Lua script (atomic on the server),
and every connection has socket timeouts so a dead or slow Redis costs at most
``LIZZY_REDIS_SOCKET_TIMEOUT`` per call instead of hanging a webhook. Values are JSON, never pickle:
a pickle read back from a shared Redis is code execution.

Clients are cached per URL and per process. redis-py's own retries are switched off: a retried
compare-and-set whose first reply was lost would report a conflict for a write that succeeded, and
the callers (circuit breaker, fallbacks) decide what a failure means.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from lizzy.errors import ServiceUnavailable
from lizzy.exact_json import exact_json

# Key formats. ``{prefix}`` is LIZZY_REDIS_PREFIX (default ``lizzy:``), so the legacy store's keys are
# ``lizzy:session:+12065550100``.
SESSION_KEY = "{prefix}session:{phone}"
SESSION_MATCH = "{prefix}session:*"
DIRTY_HASH_KEY = "{prefix}sessions:dirty"  # phone -> write counter of its last unflushed write
DIRTY_SINCE_KEY = "{prefix}sessions:dirty:since"  # phone -> epoch ms of its oldest unflushed write
DIRTY_SEQ_KEY = "{prefix}sessions:dirty:seq"  # the write counter
BASE_HASH_KEY = "{prefix}sessions:base"  # phone -> DynamoDB version its next flush must find (0: none live)
FLUSH_LOCK_KEY = "{prefix}sessions:flush:lock"
FLUSH_FENCE_SEQ_KEY = "{prefix}sessions:flush:fence"  # fencing numbers: one per lock acquisition, increasing
FLUSH_LAST_KEY = "{prefix}sessions:flush:last"  # JSON summary of the last completed flush
DIVERGENCE_KEY = "{prefix}sessions:shadow:divergences"  # sorted set: sample JSON, scored by epoch s
EVENTS_CHANNEL = "{prefix}events:sessions"
PRESENCE_KEY = "{prefix}presence:{phone_hash}"  # sorted set: viewer -> expiry epoch s
MIGRATE_CURSOR_KEY = "{prefix}migrate:sessions:cursor"

ERR_UNAVAILABLE = "Redis is unreachable ({reason}). Try again shortly."
ERR_NOT_CONFIGURED = "Redis is not configured: set REDIS_URL (or LIZZY_SESSION_REDIS_URL)."


class RedisUnavailable(ServiceUnavailable):
    code = "redis_unavailable"


# Errors that mean "Redis did not answer properly"; callers catch RedisUnavailable only.
_TRANSPORT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError, OSError)

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_url() -> str | None:
    return settings.LIZZY_SESSION_REDIS_URL or settings.REDIS_URL


def key(fmt: str, **parts: str) -> str:
    return fmt.format(prefix=settings.LIZZY_REDIS_PREFIX, **parts)


def get_redis(url: str | None = None) -> redis.Redis:
    """The process's client for ``url`` (default: the session Redis), created on first use."""
    url = url or redis_url()
    if not url:
        raise RedisUnavailable(ERR_NOT_CONFIGURED)
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    retry=Retry(NoBackoff(), 0),
                    decode_responses=True,
                    health_check_interval=30,
                )
                _clients[url] = client
    return client


def reset_redis() -> None:
    """Forget cached clients (tests pointing at a Redis server they started)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _scripts.clear()


def redis_call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one client call; transport failures become ``RedisUnavailable`` (503)."""
    try:
        return function(*args, **kwargs)
    except _TRANSPORT_ERRORS as exc:
        raise RedisUnavailable(ERR_UNAVAILABLE.format(reason=type(exc).__name__)) from exc


# --- JSON codec -----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Built once: json.dumps with options builds a new encoder on every call (json_loads: lizzy.exact_json).
_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"), sort_keys=True)


def json_dumps(value: Any) -> str:
    return _ENCODER.encode(value)


json_loads = exact_json  # numbers with a fraction come back as exact Decimals, as DynamoDB returns them


# --- Scripts --------------------------------------------------------------------------------------

# Each script is a file of its own next to this module (lizzy/redis_scripts/*.lua), read once at import;
# its first comment states the invariant it keeps. ``_Script`` sends it with EVALSHA (SCRIPT LOAD once).
_SCRIPT_DIR = Path(__file__).with_name("redis_scripts")


def _load_script(name: str) -> str:
    return (_SCRIPT_DIR / f"{name}.lua").read_text(encoding="utf-8")


_CAS_SCRIPT = _load_script("session_cas")
_SET_IF_NEWER_SCRIPT = _load_script("session_set_if_newer")
_TOMBSTONE_SCRIPT = _load_script("session_tombstone")
_FORGET_CLEAN_SCRIPT = _load_script("session_forget_clean")
_DROP_SCRIPT = _load_script("session_drop")
_DIRTY_FLUSHED_SCRIPT = _load_script("dirty_flushed")
_DIRTY_CLEAR_SCRIPT = _load_script("dirty_clear")
_RELEASE_SCRIPT = _load_script("lock_release")
_RENEW_SCRIPT = _load_script("lock_renew")
SCRIPT_NAMES = (
    "session_cas",
    "session_set_if_newer",
    "session_tombstone",
    "session_forget_clean",
    "session_drop",
    "dirty_flushed",
    "dirty_clear",
    "lock_release",
    "lock_renew",
)


class _Script:
    """A Lua script bound to a client: EVALSHA, and SCRIPT LOAD once when the server does not know it.

    redis-py's own ``Script.__call__`` does the same with more per-call work (tuple building, a
    pipeline check, an import); a session read pays for that on every request (docs/BENCHMARKS.md).
    """

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, *, keys: list[str], args: list[str] | tuple[str, ...] = ()) -> Any:
        try:
            return self.client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.sha = self.client.script_load(self.source)
            return self.client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


_scripts: dict[tuple[int, str], _Script] = {}


def _script(client: redis.Redis, source: str) -> _Script:
    """The client's script object for ``source``, made once (hashing the source every call costs too).

    The object keeps its client alive, so the id in the key cannot be reused while the entry exists;
    ``reset_redis`` clears the cache with the clients.
    """
    cache_key = (id(client), source)
    script = _scripts.get(cache_key)
    if script is None:
        script = _scripts.setdefault(cache_key, _Script(client, source))
    return script


# --- Session verbs --------------------------------------------------------------------------------


def redis_session_get(*, phone: str, url: str | None = None) -> dict[str, Any] | None:
    """The document of a live session, or None: one plain GET (the key's expiry is the session's).

    The expiry is not fetched: every write sets it to ``lastActivity`` + the session TTL, so the
    reader derives it from the document (docs/BENCHMARKS.md, benchmark 2).
    """
    value = redis_call(get_redis(url).get, key(SESSION_KEY, phone=phone))
    return None if value is None else json_loads(value)


TOMBSTONE = "tombstone"  # a document with this attribute is a deleted or expired session: absent to readers


def is_tombstone(document: Mapping[str, Any] | None) -> bool:
    return document is not None and TOMBSTONE in document


def _session_keys(phone: str) -> list[str]:
    return [
        key(SESSION_KEY, phone=phone),
        key(DIRTY_HASH_KEY),
        key(DIRTY_SINCE_KEY),
        key(DIRTY_SEQ_KEY),
        key(BASE_HASH_KEY),
    ]


def redis_session_cas(
    *, phone: str, document: Mapping[str, Any], expected_version: int | None, expire_at: int, mark_dirty: bool = False
) -> tuple[bool, int]:
    """Write ``document`` if the stored version is ``expected_version`` (None: no live session).

    Returns (True, dirty counter) or (False, current version; -1 when absent, -2 when a tombstone, -3 when
    a create's version is not above the tombstone it would replace).
    With ``mark_dirty`` the phone enters the write-behind dirty set in the same atomic step, so an
    acknowledged write is always either flushed or still marked (lizzy/redis_scripts/session_cas.lua).
    """
    client = get_redis()
    args = [
        "" if expected_version is None else str(expected_version),
        json_dumps(document),
        str(expire_at),
        "1" if mark_dirty else "0",
        phone,
        str(int(time.time() * 1000)),
        str(int(document["version"])),
    ]
    ok, value = redis_call(_script(client, _CAS_SCRIPT), keys=_session_keys(phone), args=args)
    return bool(ok), int(value)


def redis_session_set_if_newer(*, phone: str, document: Mapping[str, Any], expire_at: int) -> bool:
    """Mirror or cache-fill write: never replaces a newer version, a newer tombstone or a dirty copy."""
    client = get_redis()
    args = [str(document["version"]), json_dumps(document), str(expire_at), phone]
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY)]
    return bool(redis_call(_script(client, _SET_IF_NEWER_SCRIPT), keys=keys, args=args))


def redis_session_tombstone(
    *,
    phone: str,
    expected_version: int | None = None,
    kind: str = "deleted",
    mark_dirty: bool = False,
    floor_version: int | None = None,
    lifetime_seconds: int | None = None,
    keep_later: bool = False,
    keep_started_after: bool = False,
) -> int:
    """Replace a live session by a tombstone one version up: 1 done, 0 no live session, 2 a tombstone is there
    (the session is ended in Redis already; with ``floor_version``, at or above it; with ``mark_dirty``, an unflushed
    one), -(N + 1) mismatch.

    ``mark_dirty``: write-behind, the flusher applies it to DynamoDB (it does not expire until then).
    Otherwise the tombstone expires after ``lifetime_seconds`` (default LIZZY_TOMBSTONE_SECONDS). With no
    live value in Redis and ``floor_version`` given (DynamoDB's leftover version after the caller deleted
    there), a clean tombstone at that version still blocks older fills. With ``keep_later`` (parallel's end of a
    session Redis lacked) a live value above ``floor_version`` (a lifetime created since) stays (0); without it
    (cutover: the store of record ended whatever was live) that value is ended too. With ``keep_started_after``
    (cached) only a value that started after the end stays: a clean copy above ``floor_version`` or a dirty
    write-behind lineage whose base is at or above it (an older unflushed lineage is ended). An unflushed lineage
    ended with ``floor_version`` (its base below it) becomes a dirty tombstone descending from the leftover.
    """
    client = get_redis()
    args = [
        "" if expected_version is None else str(expected_version),
        phone,
        str(int(time.time() * 1000)),
        kind,
        "1" if mark_dirty else "0",
        str(int(lifetime_seconds or settings.LIZZY_TOMBSTONE_SECONDS)),
        "" if floor_version is None else str(floor_version),
        "1" if keep_later else "2" if keep_started_after else "0",
    ]
    return int(redis_call(_script(client, _TOMBSTONE_SCRIPT), keys=_session_keys(phone), args=args))


def redis_session_drop(*, phone: str, expected_base: int | str | None = None, older_than: int | None = None) -> bool:
    """DynamoDB won a fork: drop the copy, its dirty mark and its base (only while the base is unchanged;
    with ``older_than``, a version written to DynamoDB without Redis, only a copy that does not descend
    from that write: lizzy/redis_scripts/session_drop.lua)."""
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY), key(BASE_HASH_KEY)]
    args = [
        phone,
        "" if expected_base is None else str(expected_base),
        "" if older_than is None else str(older_than),
    ]
    return redis_call(_script(client, _DROP_SCRIPT), keys=keys, args=args) == 1


def redis_session_drop_older(*, phone: str, older_than: int) -> int:
    """``redis_session_drop`` with ``older_than``, telling apart why nothing was dropped: 1 dropped, 0 kept
    (the copy descends from the write or later), -1 no copy at all (session_drop.lua)."""
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY), key(BASE_HASH_KEY)]
    return int(redis_call(_script(client, _DROP_SCRIPT), keys=keys, args=[phone, "", str(older_than)]))


def redis_session_forget_clean(*, phone: str, keep_tombstone: bool = False) -> int:
    """Drop a cached copy unless it has unflushed write-behind writes (they exist nowhere else).

    1 dropped, 0 absent (or, with ``keep_tombstone``, a tombstone kept), -1 kept (dirty). The check and the
    delete are one script: a write-behind save landing in between cannot be lost.
    """
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY)]
    args = [phone, "1" if keep_tombstone else "0"]
    return int(redis_call(_script(client, _FORGET_CLEAN_SCRIPT), keys=keys, args=args))


def redis_session_keys(*, phone_prefix: str = "", cursor: int = 0, count: int = 200) -> tuple[int, list[str]]:
    """One SCAN page (never KEYS) of session keys whose phone starts with ``phone_prefix`` (digits and +)."""
    client = get_redis()
    match = key(SESSION_KEY, phone=phone_prefix) + "*"
    next_cursor, keys = redis_call(client.scan, cursor=cursor, match=match, count=count)
    return int(next_cursor), list(keys)


def redis_session_entries(*, phones: list[str]) -> list[tuple[str | None, int, bool]]:
    """For each phone: (value JSON or None, PTTL ms, has unflushed writes), in one round trip."""
    if not phones:
        return []
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    for phone in phones:
        name = key(SESSION_KEY, phone=phone)
        pipe.get(name)
        pipe.pttl(name)
    pipe.hmget(key(DIRTY_HASH_KEY), phones)
    results = redis_call(pipe.execute)
    dirty = results[-1]
    return [(results[2 * i], int(results[2 * i + 1]), dirty[i] is not None) for i in range(len(phones))]


# --- Write-behind dirty set -----------------------------------------------------------------------


def redis_dirty_page(*, cursor: int = 0, count: int = 500) -> tuple[int, dict[str, str]]:
    """One HSCAN page of the dirty set: (next cursor, phone -> counter)."""
    client = get_redis()
    next_cursor, entries = redis_call(client.hscan, key(DIRTY_HASH_KEY), cursor=cursor, count=count)
    return int(next_cursor), dict(entries)


def redis_dirty_snapshot(*, phones: list[str]) -> list[tuple[str | None, str | None, str | None]]:
    """For each phone, atomically: (dirty counter, value JSON, flush base), in one MULTI.

    The key's expiry is not read: it is the session's lastActivity + TTL (``session_expiry``). The base
    is the DynamoDB version the flush's conditional write must find (None: written before bases existed).
    """
    client = get_redis()
    pipe = client.pipeline(transaction=True)
    pipe.hmget(key(DIRTY_HASH_KEY), phones)
    pipe.mget([key(SESSION_KEY, phone=phone) for phone in phones])
    pipe.hmget(key(BASE_HASH_KEY), phones)
    counters, values, bases = redis_call(pipe.execute)
    return list(zip(counters, values, bases, strict=True))


def redis_dirty_flushed(*, flushed: Mapping[str, tuple[str, int]]) -> int:
    """After the conditional writes: each phone's base becomes the version written; phones whose counter
    is still the one the flush read leave the dirty set. Returns how many left it."""
    if not flushed:
        return 0
    client = get_redis()
    args: list[str] = []
    for phone, (counter, version) in flushed.items():
        args += [phone, str(counter), str(version)]
    args.append(str(int(settings.LIZZY_TOMBSTONE_SECONDS)))
    keys = [key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY), key(BASE_HASH_KEY), key(SESSION_KEY, phone="")]
    return int(redis_call(_script(client, _DIRTY_FLUSHED_SCRIPT), keys=keys, args=args))


def redis_dirty_clear(*, counters: Mapping[str, str]) -> int:
    """Compare-and-delete: clear each phone whose counter is still the one the flush read."""
    if not counters:
        return 0
    client = get_redis()
    args: list[str] = []
    for phone, counter in counters.items():
        args += [phone, str(counter)]
    keys = [key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY), key(BASE_HASH_KEY)]
    return int(redis_call(_script(client, _DIRTY_CLEAR_SCRIPT), keys=keys, args=args))


def redis_dirty_backlog() -> tuple[int, float | None]:
    """(dirty sessions, epoch seconds of the oldest unflushed write or None)."""
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.hlen(key(DIRTY_HASH_KEY))
    pipe.zrange(key(DIRTY_SINCE_KEY), 0, 0, withscores=True)
    size, oldest = redis_call(pipe.execute)
    return int(size), (oldest[0][1] / 1000 if oldest else None)


# --- Locks ----------------------------------------------------------------------------------------


def redis_lock_acquire(*, name: str, ttl_seconds: float) -> str | None:
    """A token if we now hold ``name`` (SET NX PX), else None. The expiry frees a crashed holder's lock."""
    token = uuid.uuid4().hex
    client = get_redis()
    acquired = redis_call(client.set, key(name), token, nx=True, px=int(ttl_seconds * 1000))
    return token if acquired else None


def redis_counter_next(*, name: str) -> int:
    """The next number of a counter that only grows (fencing tokens)."""
    return int(redis_call(get_redis().incr, key(name)))


def redis_lock_holds(*, name: str, token: str) -> bool:
    """Is ``token`` still the holder? One GET (the fencing check before a flush write)."""
    return redis_call(get_redis().get, key(name)) == token


def redis_lock_renew(*, name: str, token: str, ttl_seconds: float) -> bool:
    """Extend our lock; False when it is no longer ours (the holder must stop writing)."""
    client = get_redis()
    args = [token, str(int(ttl_seconds * 1000))]
    return bool(redis_call(_script(client, _RENEW_SCRIPT), keys=[key(name)], args=args))


def redis_lock_release(*, name: str, token: str) -> bool:
    """Release only our own lock: after an expiry someone else may hold it."""
    client = get_redis()
    return bool(redis_call(_script(client, _RELEASE_SCRIPT), keys=[key(name)], args=[token]))


# --- Plain values and sorted sets (flush summary, shadow-read samples, presence) ------------------


def redis_set_json(*, name: str, value: Any, ttl_seconds: int | None = None, url: str | None = None) -> None:
    client = get_redis(url)
    redis_call(client.set, key(name), json_dumps(value), ex=ttl_seconds)


def redis_get_json(*, name: str, url: str | None = None) -> Any:
    client = get_redis(url)
    value = redis_call(client.get, key(name))
    return None if value is None else json_loads(value)


def redis_delete(*, name: str, url: str | None = None) -> None:
    client = get_redis(url)
    redis_call(client.delete, key(name))


def redis_window_add(*, name: str, member: str, score: float, keep_seconds: int) -> None:
    """Add to a time-scored sorted set and drop what fell out of the window."""
    client = get_redis()
    full = key(name)
    pipe = client.pipeline(transaction=True)
    pipe.zadd(full, {member: score})
    pipe.zremrangebyscore(full, "-inf", score - keep_seconds)
    pipe.expire(full, keep_seconds)
    redis_call(pipe.execute)


def redis_window_count(*, name: str, since: float) -> int:
    client = get_redis()
    return int(redis_call(client.zcount, key(name), since, "+inf"))


def redis_window_latest(*, name: str, since: float, limit: int = 20) -> list[str]:
    client = get_redis()
    return list(redis_call(client.zrevrangebyscore, key(name), "+inf", since, start=0, num=limit))


def redis_presence_touch(*, phone_hash: str, viewer: str, ttl_seconds: int) -> list[str]:
    """Mark ``viewer`` as looking at a session for ``ttl_seconds``; return every current viewer."""
    client = get_redis()
    now = time.time()
    name = key(PRESENCE_KEY, phone_hash=phone_hash)
    pipe = client.pipeline(transaction=True)
    pipe.zadd(name, {viewer: now + ttl_seconds})
    pipe.zremrangebyscore(name, "-inf", now)
    pipe.expire(name, ttl_seconds)
    pipe.zrangebyscore(name, now, "+inf")
    return list(redis_call(pipe.execute)[-1])


def redis_presence_list(*, phone_hash: str) -> list[str]:
    client = get_redis()
    return list(redis_call(client.zrangebyscore, key(PRESENCE_KEY, phone_hash=phone_hash), time.time(), "+inf"))


def redis_presence_leave(*, phone_hash: str, viewer: str) -> None:
    client = get_redis()
    redis_call(client.zrem, key(PRESENCE_KEY, phone_hash=phone_hash), viewer)


# --- Pub/sub --------------------------------------------------------------------------------------


def redis_publish(*, channel: str, message: Mapping[str, Any]) -> int:
    client = get_redis()
    return int(redis_call(client.publish, key(channel), json_dumps(message)))


def redis_subscribe(*, channel: str, max_seconds: float, poll_seconds: float = 1.0) -> Iterator[dict[str, Any] | None]:
    """Messages published on ``channel`` for up to ``max_seconds``; None on each idle poll (heartbeats).

    Pub/sub needs its own connection (a subscribed connection can run no other command).
    """
    client = get_redis()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        redis_call(pubsub.subscribe, key(channel))
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            message = redis_call(pubsub.get_message, timeout=min(poll_seconds, max(deadline - time.monotonic(), 0)))
            if message is None:
                yield None
            elif message.get("type") == "message":
                yield json_loads(message["data"])
    finally:
        pubsub.close()


# --- Legacy copy ----------------------------------------------------------------------------------


def redis_scan_sessions(*, url: str | None, cursor: int, count: int) -> tuple[int, list[str]]:
    """One SCAN page (never KEYS) of session keys: (next cursor, keys)."""
    client = get_redis(url)
    next_cursor, keys = redis_call(client.scan, cursor=cursor, match=key(SESSION_MATCH), count=count)
    return int(next_cursor), list(keys)


def redis_values_with_pttl(*, url: str | None, keys: list[str]) -> list[tuple[str | None, int]]:
    """(value, PTTL ms) per key in one round trip; PTTL -2 means the key is gone, -1 no expiry."""
    client = get_redis(url)
    pipe = client.pipeline(transaction=False)
    for name in keys:
        pipe.get(name)
        pipe.pttl(name)
    results = redis_call(pipe.execute)
    return [(results[2 * i], int(results[2 * i + 1])) for i in range(len(keys))]


def redis_dbsize(*, url: str | None = None) -> int:
    return int(redis_call(get_redis(url).dbsize))


def redis_ping(*, url: str | None = None) -> bool:
    return bool(redis_call(get_redis(url).ping))


def phone_from_session_key(name: str) -> str:
    return name.removeprefix(key(SESSION_KEY, phone=""))
