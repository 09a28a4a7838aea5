"""Benchmark 1: a session turn (the store's load + save) vs raw boto3 GetItem + PutItem. Target ≤ 1.15×."""

from __future__ import annotations

from bench.common import Result, compare, endpoint, raw_client, setup_django, timed

NAME = "session_turn"


def run(*, smoke: bool = False, endpoints: tuple[str, ...] = ("moto", "moto-gunicorn")) -> list[Result]:
    turns = 20 if smoke else 300
    runs = 2 if smoke else 5
    results = []
    for kind in endpoints:
        with endpoint(kind) as url:
            results.append(_measure(url, kind, turns, runs))
    return results


def turn_timings(
    url: str, turns: int, runs: int, phone: str = "+12065550100", *, create_table: bool = True
) -> tuple[float, float]:
    """Seconds per turn: (store load + save, raw GetItem + PutItem), alternating, median of ``runs``.

    ``create_table=False`` for the stub endpoint, which answers item calls only (no DescribeTable).
    """
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

    def raw() -> float:
        def loop():
            for _ in range(turns):
                client.get_item(TableName=table, Key=raw_key, ConsistentRead=True)
                client.put_item(TableName=table, Item=raw_item)

        return timed(loop) / turns

    return compare(runs, product, raw)


def _measure(url: str, kind: str, turns: int, runs: int) -> Result:
    a, b = turn_timings(url, turns, runs)
    return Result(
        bench=NAME,
        metric="ms per turn",
        a_label="store load+save",
        a=a * 1000,
        b_label="raw GetItem+PutItem",
        b=b * 1000,
        unit="ms",
        target="≤ 1.15×",
        endpoint=kind,
    )
