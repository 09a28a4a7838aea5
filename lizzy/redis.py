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
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from lizzy.errors import ServiceUnavailable

# Key formats. ``{prefix}`` is LIZZY_REDIS_PREFIX (default ``lizzy:``), so the legacy store's keys are
# ``lizzy:session:+12065550100``.
SESSION_KEY = "{prefix}session:{phone}"
SESSION_MATCH = "{prefix}session:*"
DIRTY_HASH_KEY = "{prefix}sessions:dirty"  # phone -> write counter of its last unflushed write
DIRTY_SINCE_KEY = "{prefix}sessions:dirty:since"  # phone -> epoch ms of its oldest unflushed write
DIRTY_SEQ_KEY = "{prefix}sessions:dirty:seq"  # the write counter
FLUSH_LOCK_KEY = "{prefix}sessions:flush:lock"
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


# Built once: json.dumps/json.loads with options build a new encoder/decoder on every call.
_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"), sort_keys=True)
_DECODER = json.JSONDecoder(parse_float=Decimal)


def json_dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def json_loads(text: str | bytes) -> Any:
    """Numbers with a fraction come back as exact Decimals, as DynamoDB returns them."""
    return _DECODER.decode(text if isinstance(text, str) else text.decode("utf-8"))


# --- Scripts --------------------------------------------------------------------------------------

# KEYS: session, dirty hash, dirty since, dirty seq.
# ARGV: expected version ("" = must not exist), value JSON, expire-at epoch s, mark dirty (0/1), phone, now ms.
# Returns {1, new counter or 0} on success, {0, current version or -1} on a version mismatch.
_CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
local current_version = -1
if current then
  current_version = tonumber(cjson.decode(current)['version'] or 0)
end
if ARGV[1] == '' then
  if current then return {0, current_version} end
elseif current_version ~= tonumber(ARGV[1]) then
  return {0, current_version}
end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
local seq = 0
if ARGV[4] == '1' then
  seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[2], ARGV[5], seq)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[6], ARGV[5])
end
return {1, seq}
"""

# KEYS: session. ARGV: version, value JSON, expire-at. Writes only if nothing newer is there.
_SET_IF_NEWER_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(cjson.decode(current)['version'] or 0) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
return 1
"""

# KEYS: session, dirty hash, dirty since. ARGV: expected version ("" = any), phone.
# Returns 1 deleted, 0 absent, -N version mismatch (N = current version + 1).
_DELETE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if ARGV[1] ~= '' and tonumber(cjson.decode(current)['version'] or 0) ~= tonumber(ARGV[1]) then
  return -(tonumber(cjson.decode(current)['version'] or 0) + 1)
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""

# KEYS: session, dirty hash. ARGV: phone. Drops a cached copy unless it holds unflushed writes.
# Returns 1 deleted, 0 absent, -1 kept because the phone is in the write-behind dirty set.
_FORGET_CLEAN_SCRIPT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
return redis.call('DEL', KEYS[1])
"""

# KEYS: dirty hash, dirty since. ARGV: phone1, counter1, phone2, counter2...
# A phone leaves the dirty set only if no write happened since the flush read its counter.
_DIRTY_CLEAR_SCRIPT = """
local cleared = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    cleared = cleared + 1
  end
end
return cleared
"""

# KEYS: lock. ARGV: token. Only the holder's token releases the lock.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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


def redis_session_cas(
    *, phone: str, document: Mapping[str, Any], expected_version: int | None, expire_at: int, mark_dirty: bool = False
) -> tuple[bool, int]:
    """Write ``document`` if the stored version is ``expected_version`` (None: no live session).

    Returns (written, dirty counter) or (False, current version, -1 when absent). With ``mark_dirty``
    the phone enters the write-behind dirty set in the same atomic step, so an acknowledged write is
    always either flushed or still marked.
    """
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY), key(DIRTY_SEQ_KEY)]
    args = [
        "" if expected_version is None else str(expected_version),
        json_dumps(document),
        str(expire_at),
        "1" if mark_dirty else "0",
        phone,
        str(int(time.time() * 1000)),
    ]
    ok, value = redis_call(_script(client, _CAS_SCRIPT), keys=keys, args=args)
    return bool(ok), int(value)


def redis_session_set_if_newer(*, phone: str, document: Mapping[str, Any], expire_at: int) -> bool:
    """Mirror or cache-fill write: never replaces a newer version already in Redis."""
    client = get_redis()
    args = [str(document["version"]), json_dumps(document), str(expire_at)]
    return bool(redis_call(_script(client, _SET_IF_NEWER_SCRIPT), keys=[key(SESSION_KEY, phone=phone)], args=args))


def redis_session_delete(*, phone: str, expected_version: int | None = None) -> int:
    """1 deleted, 0 absent, -(version + 1) when the stored version is not ``expected_version``."""
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY)]
    args = ["" if expected_version is None else str(expected_version), phone]
    return int(redis_call(_script(client, _DELETE_SCRIPT), keys=keys, args=args))


def redis_session_forget(*, phone: str) -> None:
    """Drop a cached copy (after a conflict showed it stale); dirty markers are left alone."""
    client = get_redis()
    redis_call(client.delete, key(SESSION_KEY, phone=phone))


def redis_session_forget_clean(*, phone: str) -> int:
    """Drop a cached copy unless it has unflushed write-behind writes (they exist nowhere else).

    1 dropped, 0 absent, -1 kept (dirty). The check and the delete are one script: a write-behind
    save landing in between cannot be lost.
    """
    client = get_redis()
    keys = [key(SESSION_KEY, phone=phone), key(DIRTY_HASH_KEY)]
    return int(redis_call(_script(client, _FORGET_CLEAN_SCRIPT), keys=keys, args=[phone]))


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


def redis_dirty_snapshot(*, phones: list[str]) -> list[tuple[str | None, str | None]]:
    """For each phone, atomically: (dirty counter, value JSON), in one MULTI.

    The key's expiry is not read: it is the session's lastActivity + TTL (``session_expiry``).
    """
    client = get_redis()
    pipe = client.pipeline(transaction=True)
    pipe.hmget(key(DIRTY_HASH_KEY), phones)
    pipe.mget([key(SESSION_KEY, phone=phone) for phone in phones])
    counters, values = redis_call(pipe.execute)
    return list(zip(counters, values, strict=True))


def redis_dirty_clear(*, counters: Mapping[str, str]) -> int:
    """Compare-and-delete: clear each phone whose counter is still the one the flush read."""
    if not counters:
        return 0
    client = get_redis()
    args: list[str] = []
    for phone, counter in counters.items():
        args += [phone, str(counter)]
    return int(
        redis_call(_script(client, _DIRTY_CLEAR_SCRIPT), keys=[key(DIRTY_HASH_KEY), key(DIRTY_SINCE_KEY)], args=args)
    )


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
