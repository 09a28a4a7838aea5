"""A random write workload on a PostgreSQL source, an independent expectation, and a write recorder.

- ``Writers``: several connections, each a thread, doing random inserts, updates (some of only a small
  column, so a TOASTed ``big`` value is not resent), deletes, key changes and two-change transactions.
  Every write sets ``v`` from one sequence *while holding the row's lock*, so for one item key the
  committed versions strictly increase; keys are never reused (fresh ids), so a key has one life.
- ``expected_items``: the target as the mapping promises it, computed from a plain SELECT by hand.
- ``WriteRecorder``: every PutItem/DeleteItem the DynamoDB emulator executes (BatchWriteItem included),
  in order, so the test can check per key that the worker never wrote an older version after a newer.
"""

from __future__ import annotations

import functools
import itertools
import random
import secrets
import threading
from decimal import Decimal
from typing import Any

import psycopg
from moto.dynamodb.models import DynamoDBBackend

from migration_app.cdc.worker import cdc_run
from migration_app.models import MigrationPlan, Phase
from migration_app.services.phases import plan_advance
from migration_app.services.plans import plan_context, plan_setup_tables
from migration_app.services.runs import run_create, run_execute

DDL = """
CREATE SEQUENCE vseq;
CREATE TABLE stock (
  region text NOT NULL, id bigint NOT NULL, qty integer, price numeric(38,0), note text, big text,
  v bigint NOT NULL, PRIMARY KEY (region, id)
);
"""
REGIONS = ("eu", "us", "ap")


def mapping(table: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "stock",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": "public", "table-name": "stock"},
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
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT region, id, qty, price, note, big, v FROM stock").fetchall()
    items = {}
    for region, row_id, qty, price, note, big, v in rows:
        item = {"PK": f"R#{region}", "SK": f"ID#{row_id}", "region": region, "id": Decimal(row_id), "v": Decimal(v)}
        for name, value in (("qty", qty), ("price", price), ("note", note), ("big", big)):
            if value is not None:
                item[name] = Decimal(value) if isinstance(value, int) else value
        items[(item["PK"], item["SK"])] = item
    return items


def setup_source(url: str, *, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(DDL)
        for number in range(1, rows + 1):
            db.execute(
                "INSERT INTO stock VALUES (%s, %s, %s, %s, %s, %s, nextval('vseq'))",
                [REGIONS[number % 3], number, number, 10**37 + number, None if number % 4 else "n", None],
            )


class Writers:
    """``connections`` threads writing at random until ``stop()``; ``ops`` counts committed transactions."""

    def __init__(self, url: str, *, connections: int = 3, first_id: int = 10_000, seed: int = 15) -> None:
        self.url = url
        self.ids = itertools.count(first_id)
        self.id_lock = threading.Lock()
        self.stopping = threading.Event()
        self.ops = 0
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(random.Random(seed + n),), daemon=True)
            for n in range(connections)
        ]

    def fresh_id(self) -> int:
        with self.id_lock:
            return next(self.ids)

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
            with psycopg.connect(self.url, autocommit=True) as db:
                while not self.stopping.is_set():
                    try:
                        with db.transaction():
                            for _ in range(2 if rng.random() < 0.2 else 1):
                                self._one(db, rng)
                    except psycopg.errors.DeadlockDetected:
                        continue  # two two-row transactions locked in opposite orders: one rolled back, as in life
                    self.ops += 1
                    self.stopping.wait(rng.random() * 0.004)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def _one(self, db: psycopg.Connection, rng: random.Random) -> None:
        kind = rng.choices(["insert", "update", "small", "big", "rekey", "delete"], [3, 3, 2, 1, 1, 1])[0]
        if kind == "insert":
            row_id = self.fresh_id()
            db.execute(
                "INSERT INTO stock VALUES (%s, %s, %s, %s, %s, NULL, nextval('vseq'))",
                [rng.choice(REGIONS), row_id, rng.randint(0, 99), rng.randint(-(10**37), 10**38 - 1), None],
            )
            return
        row = db.execute("SELECT region, id FROM stock TABLESAMPLE SYSTEM (50) LIMIT 1").fetchone()
        if row is None:
            return
        region, row_id = row
        # the row's lock first, then the version: versions of one key increase in commit order
        if db.execute("SELECT 1 FROM stock WHERE region = %s AND id = %s FOR UPDATE", row).fetchone() is None:
            return
        where = [region, row_id]
        if kind == "update":
            db.execute(
                "UPDATE stock SET qty = %s, note = %s, price = %s, v = nextval('vseq') WHERE region = %s AND id = %s",
                [rng.randint(0, 99), rng.choice([None, "x", "ü"]), rng.randint(0, 10**38 - 1), *where],
            )
        elif kind == "small":  # big (if TOASTed) is not resent: the worker must take it from the old row
            db.execute("UPDATE stock SET qty = qty + 1, v = nextval('vseq') WHERE region = %s AND id = %s", where)
        elif kind == "big":
            db.execute(
                "UPDATE stock SET big = %s, v = nextval('vseq') WHERE region = %s AND id = %s",
                [secrets.token_urlsafe(rng.choice([10, 9000])), *where],
            )
        elif kind == "rekey":
            db.execute(
                "UPDATE stock SET region = %s, id = %s, v = nextval('vseq') WHERE region = %s AND id = %s",
                [rng.choice(REGIONS), self.fresh_id(), *where],
            )
        else:
            db.execute("DELETE FROM stock WHERE region = %s AND id = %s", where)


class WriteRecorder:
    """Every put and delete the emulator executes: (incarnation, table, (PK, SK), v or None for a delete)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, tuple[str, str], int | None]] = []
        self.incarnation = 0
        self.lock = threading.Lock()
        self._originals = {}

    def __enter__(self) -> WriteRecorder:
        recorder = self
        for name in ("put_item", "delete_item"):
            real = getattr(DynamoDBBackend, name)
            self._originals[name] = real

            def wrapper(backend, table_name, item_or_keys, *args, _real=real, _name=name, **kwargs):
                result = _real(backend, table_name, item_or_keys, *args, **kwargs)
                recorder._record(_name, table_name, item_or_keys)
                return result

            setattr(DynamoDBBackend, name, functools.wraps(real)(wrapper))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, real in self._originals.items():
            setattr(DynamoDBBackend, name, real)

    def _record(self, name: str, table: str, body: dict) -> None:
        key = (body["PK"]["S"], body["SK"]["S"])
        version = int(body["v"]["N"]) if name == "put_item" else None
        with self.lock:
            self.events.append((self.incarnation, table, key, version))

    def next_incarnation(self) -> None:
        with self.lock:
            self.incarnation += 1

    def out_of_order(self, *, table: str, incarnations: set[int]) -> list[str]:
        """Per key, within one worker incarnation: a put of a lower version after a higher one, or a put
        after the key's delete (keys are never reused). A restarted worker may replay from its last
        confirmed position, so each incarnation is checked on its own."""
        problems = []
        last: dict[tuple[int, tuple[str, str]], int | None] = {}
        deleted: set[tuple[int, tuple[str, str]]] = set()
        for incarnation, event_table, key, version in self.events:
            if event_table != table or incarnation not in incarnations:
                continue
            slot = (incarnation, key)
            if version is None:
                deleted.add(slot)
                continue
            if slot in deleted:
                problems.append(f"{key}: put v{version} after its delete (incarnation {incarnation})")
            previous = last.get(slot)
            if previous is not None and version < previous:
                problems.append(f"{key}: put v{version} after v{previous} (incarnation {incarnation})")
            last[slot] = version
        return problems


def plan_backfilled_and_caught_up(plan: MigrationPlan) -> None:
    """A CDC plan through setup and a succeeded backfill into the parallel phase, its worker caught up."""
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
    plan_advance(plan=plan, to_phase=Phase.BACKFILL, actor="test")
    with plan_context(plan=plan) as context:
        assert run_execute(run=run_create(context=context), context=context).status == "succeeded"
    plan_advance(plan=plan, to_phase=Phase.PARALLEL, actor="test")
    cdc_run(plan=plan, until_idle=True)
