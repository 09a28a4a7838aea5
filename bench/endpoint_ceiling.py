"""Benchmark 8: the local endpoint's own ceiling, and the product measured where moto is not the limit.

For each endpoint (moto's server = Werkzeug, moto under gunicorn, and ``stub``: canned answers under
gunicorn, i.e. HTTP + botocore with no database), the raw client's GetItem+PutItem pair and BatchWriteItem
throughput. ``A`` is the endpoint, ``B`` the stub: A/B says how many times the bare HTTP + client cost
the endpoint takes, so ``1 - B/A`` of every raw figure on that endpoint is moto's own work. The last
row is benchmark 1 again on the stub: the product's overhead with (almost) nothing behind it.
"""

from __future__ import annotations

from bench.common import Result, compare, endpoint, raw_client, timed
from bench.session_turn import turn_timings

NAME = "endpoint_ceiling"
ENDPOINTS = ("moto", "moto-gunicorn")


def run(*, smoke: bool = False) -> list[Result]:
    pairs = 20 if smoke else 300
    items = 100 if smoke else 2500
    runs = 2 if smoke else 5
    measured = {}
    for kind in (*ENDPOINTS, "stub"):
        with endpoint(kind) as url:
            measured[kind] = _raw(url, kind, pairs, items, runs)
            if kind == "stub":
                product_turn = _product_turn(url, pairs, runs)
    stub_pair, stub_batch = measured["stub"]
    results = []
    for kind in ENDPOINTS:
        pair, batch = measured[kind]
        results.append(
            Result(
                bench=NAME,
                metric="ms per raw GetItem+PutItem",
                a_label=f"raw pair on {kind}",
                a=pair * 1000,
                b_label="raw pair on stub",
                b=stub_pair * 1000,
                unit="ms",
                target="(moto's share = 1 - B/A)",
                endpoint=kind,
                note=f"moto's own work: {100 * (1 - stub_pair / pair):.0f}% of the pair",
            )
        )
        results.append(
            Result(
                bench=NAME,
                metric="s per 1000 items, raw BatchWriteItem",
                a_label=f"raw batch write on {kind}",
                a=batch * 1000,
                b_label="raw batch write on stub",
                b=stub_batch * 1000,
                unit="s/1k items",
                target="(moto's share = 1 - B/A)",
                endpoint=kind,
                note=f"moto's own work: {100 * (1 - stub_batch / batch):.0f}% of the write",
            )
        )
    a, b = product_turn
    results.append(
        Result(
            bench=NAME,
            metric="ms per turn",
            a_label="store load+save on stub",
            a=a * 1000,
            b_label="raw GetItem+PutItem on stub",
            b=b * 1000,
            unit="ms",
            target="≤ 1.15× (benchmark 1, no moto)",
            endpoint="stub",
        )
    )
    return results


def _raw(url: str, kind: str, pairs: int, items: int, runs: int) -> tuple[float, float]:
    """(seconds per GetItem+PutItem pair, seconds per item of a BatchWriteItem loop) for the raw client."""
    client = raw_client(url)
    table = f"BenchCeiling{kind.replace('-', '')}"
    if kind != "stub":
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "phone", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "phone", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    item = {
        "phone": {"S": "+12065550100"},
        "currentNode": {"S": "MAIN_MENU"},
        "sessionData": {"M": {"filterModel": {"S": "HRX217"}, "partsOrderRequested": {"BOOL": False}}},
        "cachedData": {"M": {}},
        "ttl": {"N": "4102444800"},
        "version": {"N": "3"},
    }
    batch = [{**item, "phone": {"S": f"+1206{number:07d}"}} for number in range(items)]

    def pair() -> float:
        def loop():
            for _ in range(pairs):
                client.get_item(TableName=table, Key={"phone": item["phone"]}, ConsistentRead=True)
                client.put_item(TableName=table, Item=item)

        return timed(loop) / pairs

    def write() -> float:
        def loop():
            for start in range(0, items, 25):
                chunk = [{"PutRequest": {"Item": one}} for one in batch[start : start + 25]]
                client.batch_write_item(RequestItems={table: chunk})

        return timed(loop) / items

    return compare(runs, pair, write)


def _product_turn(url: str, turns: int, runs: int) -> tuple[float, float]:
    """Benchmark 1's turn on the stub: what is left of the ratio once moto's own work is gone."""
    return turn_timings(url, turns, runs, phone="+12065550199", create_table=False)
