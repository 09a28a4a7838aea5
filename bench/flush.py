"""Benchmark 7: write-behind flush of 10k dirty sessions vs a raw parallel write. Target ≥ 0.85×.

A: ``sessions_flush()`` with N sessions marked dirty in Redis (HSCAN pages, MULTI snapshots, the fence
read, one conditional PutItem per session at LIZZY_FLUSH_CONCURRENCY, the lock checks, the base and
mark updates), items/s.
B (the target's baseline): the same N documents, pre-serialized, written by ``put_item`` calls at the same
concurrency with the flush's own ConditionExpression (issue 13 requires a conditional write per item;
BatchWriteItem takes no condition), items/s: what the raw client does for the same DynamoDB work.
C (reported): the same with plain unconditional ``put_item``: the difference between B and C is the
endpoint's cost of evaluating the condition (moto parses every expression in Python, benchmark 8), not ours.
A, B and C alternate; each run dirties every session again at a higher version, so every run writes N items.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import (
    Result,
    compare_many,
    endpoint,
    profiled,
    raw_client,
    redis_server,
    setup_django,
    timed,
    use_redis,
)

NAME = "flush"


def run(*, smoke: bool = False) -> list[Result]:
    sessions = 200 if smoke else 10_000
    runs = 2 if smoke else 5
    with redis_server() as redis_url, endpoint("moto-gunicorn") as url:
        setup_django(url)
        use_redis(redis_url)
        return _measure(url, sessions, runs)


def _measure(url: str, sessions: int, runs: int) -> list[Result]:
    from django.conf import settings

    from lizzy.cache_backend import CACHE_TABLE
    from lizzy.dynamodb import serialize_item
    from lizzy.redis import DIRTY_HASH_KEY, DIRTY_SEQ_KEY, DIRTY_SINCE_KEY, SESSION_KEY, get_redis, json_dumps, key
    from lizzy.tables import SESSIONS, tables_ensure
    from sessions_app.services.sessions import session_new, session_touch
    from sessions_app.services.store.base import FLUSHED_BY
    from sessions_app.services.store.redis_only import redis_document
    from sessions_app.services.store.write_behind import sessions_flush

    tables_ensure(specs=[SESSIONS, CACHE_TABLE])  # as ensure_tables does: the fence lives in the cache table
    settings.LIZZY_FLUSH_MAX_ITEMS = sessions
    client = get_redis()
    raw = raw_client(url)
    table = SESSIONS.name
    phones = [f"+1206{number:07d}" for number in range(sessions)]
    state = {"version": 0}

    def documents(version: int) -> list[dict]:
        out = []
        for phone in phones:
            session = session_new(phone=phone, customer_id=f"CUST{phone[-5:]}")
            session.session_data.update({"filterModel": "HRX217", "problemDescription": "won't start"})
            session_touch(session=session)
            session.version = version
            out.append(session)
        return out

    def dirty_all() -> None:
        """Mark every session dirty at the next version, as N write-behind saves would (pipelined)."""
        state["version"] += 1
        pipe = client.pipeline(transaction=False)
        now_ms = int(time.time() * 1000)
        for session in documents(state["version"]):
            pipe.set(key(SESSION_KEY, phone=session.phone), json_dumps(redis_document(session)), exat=session.ttl)
            pipe.hset(key(DIRTY_HASH_KEY), session.phone, state["version"])
            pipe.zadd(key(DIRTY_SINCE_KEY), {session.phone: now_ms}, nx=True)
        pipe.incr(key(DIRTY_SEQ_KEY))
        pipe.execute()

    def product() -> float:
        dirty_all()
        result = None

        def flush():
            nonlocal result
            result = sessions_flush()

        seconds = timed(flush)
        if result.written != sessions:
            raise RuntimeError(f"the flush wrote {result.written} of {sessions} sessions: {result}")
        return sessions / seconds

    def baseline(*, conditional: bool) -> float:
        state["version"] += 1
        items = [serialize_item(session.to_document()) for session in documents(state["version"])]
        now = int(time.time())
        # The condition the flush writes with when a mark has no lineage base (as in dirty_all): never
        # backwards, never over a live newer item, and the fencing number. The raw items carry no fencing
        # attribute, so the next flush's condition holds for them as it does after a flush.
        kwargs = {
            "ConditionExpression": "(attribute_not_exists(#phone) OR #ttl <= :now OR #v < :v) "
            "AND (attribute_not_exists(#fb) OR #fb <= :fence)",
            "ExpressionAttributeNames": {"#phone": "phone", "#ttl": "ttl", "#v": "version", "#fb": FLUSHED_BY},
            "ExpressionAttributeValues": {
                ":now": {"N": str(now)},
                ":v": {"N": str(state["version"])},
                ":fence": {"N": str(2**62)},
            },
        }

        def write(item):
            if conditional:
                raw.put_item(TableName=table, Item=item, **kwargs)
            else:
                raw.put_item(TableName=table, Item=item)

        def loop():
            with ThreadPoolExecutor(max_workers=settings.LIZZY_FLUSH_CONCURRENCY) as pool:
                list(pool.map(write, items))

        return sessions / timed(loop)

    a, (b, c) = compare_many(runs, product, [lambda: baseline(conditional=True), lambda: baseline(conditional=False)])
    profiled(NAME, product)
    concurrency = settings.LIZZY_FLUSH_CONCURRENCY
    label = f"sessions_flush() of {sessions} dirty"
    return [
        Result(
            bench=NAME,
            metric="items/s",
            a_label=label,
            a=a,
            b_label=f"raw conditional put_item (the flush's condition), {concurrency} threads",
            b=b,
            unit="items/s",
            target="≥ 0.85×",
            endpoint="moto-gunicorn",
        ),
        Result(
            bench=NAME,
            metric="items/s",
            a_label=label,
            a=a,
            b_label=f"raw unconditional put_item, {concurrency} threads",
            b=c,
            unit="items/s",
            target="(reported)",
            endpoint="moto-gunicorn",
        ),
    ]
