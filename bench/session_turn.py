"""Benchmark 1: a session turn (the store's load + save) vs raw boto3 GetItem + PutItem. Target ≤ 1.15×.

The store's turn is one consistent GetItem and one conditional PutItem (the version it read, the session
still live). The target's baseline does the same DynamoDB work with the raw client: GetItem, then PutItem
with the same ConditionExpression on the version it read. The unconditional pair is reported beside it:
their difference is the endpoint's cost of evaluating the condition (moto parses every expression in
Python; on the stub, benchmark 8, conditions are not evaluated and the unconditional pair is the baseline).
"""

from __future__ import annotations

import time

from bench.common import Result, compare, compare_many, endpoint, raw_client, setup_django, timed

NAME = "session_turn"


def run(*, smoke: bool = False, endpoints: tuple[str, ...] = ("moto", "moto-gunicorn")) -> list[Result]:
    turns = 20 if smoke else 300
    runs = 2 if smoke else 5
    results = []
    for kind in endpoints:
        with endpoint(kind) as url:
            results.extend(_measure(url, kind, turns, runs))
    return results


def turn_timings(
    url: str, turns: int, runs: int, phone: str = "+12065550100", *, create_table: bool = True
) -> tuple[float, float]:
    """Seconds per turn: (store load + save, raw GetItem + PutItem), alternating, median of ``runs``.

    ``create_table=False`` for the stub endpoint, which answers item calls only (no DescribeTable).
    """
    a, (plain,) = _timings(url, turns, runs, phone, create_table=create_table, conditional=False)
    return a, plain


def _timings(
    url: str, turns: int, runs: int, phone: str, *, create_table: bool, conditional: bool
) -> tuple[float, list[float]]:
    """(store turn, [raw GetItem + conditional PutItem,] raw GetItem + PutItem), seconds per turn."""
    setup_django(url)
    from django.conf import settings

    from lizzy.dynamodb import serialize_item
    from lizzy.tables import SESSIONS, tables_ensure
    from sessions_app.selectors import session_get
    from sessions_app.services.sessions import session_new, session_save

    settings.LIZZY_SESSION_STORE_MODE = "dynamodb_only"
    if create_table:
        tables_ensure(specs=[SESSIONS])
    table = SESSIONS.name
    session_save(session=session_new(phone=phone, customer_id="CUST123"), expected_version=None)
    client = raw_client(url)
    raw_item = serialize_item(session_get(phone=phone).to_document())
    raw_key = {"phone": {"S": phone}}

    def product() -> float:
        def loop():
            for _ in range(turns):
                session = session_get(phone=phone)
                session.session_data["filterModel"] = "HRX217"
                session_save(session=session, expected_version=session.version)

        return timed(loop) / turns

    ttl_seconds = settings.LIZZY_SESSION_TTL_SECONDS

    def raw() -> float:
        def loop():
            for _ in range(turns):
                client.get_item(TableName=table, Key=raw_key, ConsistentRead=True)
                # a fresh ttl on every write, as the store's save does (a frozen one would expire mid-run)
                item = {**raw_item, "ttl": {"N": str(int(time.time()) + ttl_seconds)}}
                client.put_item(TableName=table, Item=item)

        return timed(loop) / turns

    condition = {
        "ConditionExpression": "#v = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)",
        "ExpressionAttributeNames": {"#v": "version", "#ttl": "ttl"},
    }

    def raw_conditional() -> float:
        def loop():
            for _ in range(turns):
                read = client.get_item(TableName=table, Key=raw_key, ConsistentRead=True)["Item"]
                version = int(read["version"]["N"])
                now = int(time.time())
                item = {**raw_item, "version": {"N": str(version + 1)}, "ttl": {"N": str(now + ttl_seconds)}}
                values = {":expected": {"N": str(version)}, ":now": {"N": str(now)}}
                client.put_item(TableName=table, Item=item, ExpressionAttributeValues=values, **condition)

        return timed(loop) / turns

    if not conditional:
        a, b = compare(runs, product, raw)
        return a, [b]
    return compare_many(runs, product, [raw_conditional, raw])


def _measure(url: str, kind: str, turns: int, runs: int) -> list[Result]:
    a, (conditional, plain) = _timings(url, turns, runs, "+12065550100", create_table=True, conditional=True)
    return [
        Result(
            bench=NAME,
            metric="ms per turn",
            a_label="store load+save",
            a=a * 1000,
            b_label="raw GetItem+conditional PutItem (the store's condition)",
            b=conditional * 1000,
            unit="ms",
            target="≤ 1.15×",
            endpoint=kind,
        ),
        Result(
            bench=NAME,
            metric="ms per turn",
            a_label="store load+save",
            a=a * 1000,
            b_label="raw GetItem+PutItem (unconditional)",
            b=plain * 1000,
            unit="ms",
            target="(reported)",
            endpoint=kind,
        ),
    ]


if __name__ == "__main__":
    # python -m bench.session_turn [RUNS]: the store's turn on the stub endpoint only (no moto work, no
    # condition evaluated): benchmark 8's last row, alone (checkouts before 2026-12-01 lack this entry point).
    import sys

    with endpoint("stub") as stub_url:
        store, raw = turn_timings(
            stub_url, 300, int(sys.argv[1]) if len(sys.argv) > 1 else 9, phone="+12065550199", create_table=False
        )
    print(f"stub turn: store {store * 1000:.3f} ms, raw {raw * 1000:.3f} ms, A/B {store / raw:.3f}")
