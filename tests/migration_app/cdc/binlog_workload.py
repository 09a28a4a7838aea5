"""The MySQL/MariaDB twin of workload.py: a random write workload, an independent expectation, a mapping.

- ``Writers``: several PyMySQL connections, each a thread, doing random inserts, updates (some of one small
  column), deletes, key changes and two-change transactions. Every write takes ``v`` from one counter *while
  holding the row's lock* (``SELECT ... FOR UPDATE`` first), so for one item key the committed versions
  strictly increase; keys are never reused (fresh ids), so a key has one life. workload.WriteRecorder then
  checks the order the worker wrote them in.
- ``expected_items``: the target as the mapping promises it, computed from a plain SELECT by hand.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import pymysql

DDL = """
CREATE TABLE stock (
  region varchar(8) NOT NULL, id bigint NOT NULL, qty int, price decimal(38,0), note varchar(20), big text,
  v bigint NOT NULL, PRIMARY KEY (region, id)
) ENGINE=InnoDB
"""
REGIONS = ("eu", "us", "ap")
RETRIED = (1213, 1205)  # deadlock, lock wait timeout: the transaction is rolled back and tried again


def connect(url: str, *, autocommit: bool = True) -> pymysql.Connection:
    parsed = urlparse(url)
    return pymysql.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.path.lstrip("/"),
        charset="utf8mb4",
        autocommit=autocommit,
        init_command="SET time_zone = '+00:00'",
    )


def execute(url: str, *statements: str) -> None:
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def database(url: str) -> str:
    return urlparse(url).path.lstrip("/")


def mapping(table: str, url: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "stock",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": database(url), "table-name": "stock"},
                "target-table-name": table,
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "sort-key-name": "SK",
                    "attribute-mappings": [
                        {"target-attribute-name": "PK", "attribute-type": "scalar", "value": "R#${region}"},
                        {"target-attribute-name": "SK", "attribute-type": "scalar", "value": "ID#${id}"},
                    ],
                },
            }
        ]
    }


def expected_items(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The items the source's rows must be, by hand (not through the engine): NULL columns are absent."""
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT region, id, qty, price, note, big, v FROM stock")
            rows = cursor.fetchall()
    finally:
        connection.close()
    items = {}
    for region, row_id, qty, price, note, big, v in rows:
        item = {"PK": f"R#{region}", "SK": f"ID#{row_id}", "region": region, "id": Decimal(row_id), "v": Decimal(v)}
        for name, value in (("qty", qty), ("price", price), ("note", note), ("big", big)):
            if value is not None:
                item[name] = Decimal(value) if isinstance(value, int) else value
        items[(item["PK"], item["SK"])] = item
    return items


def setup_source(url: str, *, rows: int) -> int:
    """The table and ``rows`` rows (versions 1..rows); returns the next free version."""
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(DDL)
            cursor.executemany(
                "INSERT INTO stock VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(REGIONS[n % 3], n, n, 10**37 + n, None if n % 4 else "n", None, n) for n in range(1, rows + 1)],
            )
    finally:
        connection.close()
    return rows + 1


class Writers:
    """``connections`` threads writing at random until ``stop()``; ``ops`` counts committed transactions."""

    def __init__(self, url: str, *, first_version: int, connections: int = 3, first_id: int = 10_000, seed: int = 15):
        self.url = url
        self.ids = itertools.count(first_id)
        self.versions = itertools.count(first_version)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ops = 0
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(random.Random(seed + n),), daemon=True)
            for n in range(connections)
        ]

    def fresh(self, counter) -> int:
        with self.lock:
            return next(counter)

    def start(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        if self.errors:
            raise self.errors[0]

    def _loop(self, rng: random.Random) -> None:
        try:
            connection = connect(self.url, autocommit=False)
            with connection.cursor() as cursor:
                while not self.stopping.is_set():
                    try:
                        for _ in range(2 if rng.random() < 0.2 else 1):
                            self._one(cursor, rng)
                        connection.commit()
                    except pymysql.MySQLError as exc:
                        connection.rollback()
                        if exc.args and exc.args[0] in RETRIED:
                            continue
                        raise
                    self.ops += 1
                    self.stopping.wait(rng.random() * 0.004)
            connection.close()
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def _one(self, cursor, rng: random.Random) -> None:
        kind = rng.choices(["insert", "update", "small", "big", "rekey", "delete"], [3, 3, 2, 1, 1, 1])[0]
        if kind == "insert":
            cursor.execute(
                "INSERT INTO stock VALUES (%s, %s, %s, %s, NULL, NULL, %s)",
                [
                    rng.choice(REGIONS),
                    self.fresh(self.ids),
                    rng.randint(0, 99),
                    rng.randint(-(10**37), 10**38 - 1),
                    self.fresh(self.versions),
                ],
            )
            return
        cursor.execute(
            "SELECT region, id FROM stock WHERE region = %s AND id >= %s ORDER BY id LIMIT 1",
            [rng.choice(REGIONS), rng.randint(0, 12_000)],
        )
        row = cursor.fetchone()
        if row is None:
            return
        # the row's lock first, then the version: versions of one key increase in commit order
        if not cursor.execute("SELECT 1 FROM stock WHERE region = %s AND id = %s FOR UPDATE", row):
            return
        version = self.fresh(self.versions)
        where = list(row)
        if kind == "update":
            cursor.execute(
                "UPDATE stock SET qty = %s, note = %s, price = %s, v = %s WHERE region = %s AND id = %s",
                [rng.randint(0, 99), rng.choice([None, "x", "ü"]), rng.randint(0, 10**38 - 1), version, *where],
            )
        elif kind == "small":
            cursor.execute("UPDATE stock SET qty = qty + 1, v = %s WHERE region = %s AND id = %s", [version, *where])
        elif kind == "big":
            cursor.execute(
                "UPDATE stock SET big = %s, v = %s WHERE region = %s AND id = %s",
                [secrets.token_urlsafe(rng.choice([10, 9000])), version, *where],
            )
        elif kind == "rekey":
            cursor.execute(
                "UPDATE stock SET region = %s, id = %s, v = %s WHERE region = %s AND id = %s",
                [rng.choice(REGIONS), self.fresh(self.ids), version, *where],
            )
        else:
            cursor.execute("DELETE FROM stock WHERE region = %s AND id = %s", where)
