"""Units cut ahead (issue 14, third round): the runner that takes an open-ended unit cuts it and the unit after it
(a second keyset probe) and creates that one already cut. Each test is the input most likely to break the
tiling (every row read once, by one unit): composite keys whose text orders by a collation, a table that
changes between the two probes, a resume of a failed run whose open-ended unit was cut ahead, a filter.
"""

from __future__ import annotations

import psycopg
import pymysql
import pytest

from lizzy.dynamodb import dynamodb_scan_segment
from migration_app.models import RunStatus, Segment
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import RunFailed, run_create, run_reopen, segment_run
from tests.fixtures.dynamodb_hooks import client_error, fault_injection

pytestmark = pytest.mark.django_db

UNIT_ROWS = 7

# Text that orders differently by byte and by a linguistic collation ("Beta" < "alpha" in C, not in ICU or
# MariaDB's general_ci), composite with an integer.
WORDS = ["alpha", "Beta", "gamma", "Delta", "épsilon", "Zeta", "eta", "Ômega", "_under", "10", "9"]
DDL = {
    "postgres": 'CREATE TABLE regions (region text COLLATE "und-x-icu" NOT NULL, n integer NOT NULL, '
    "v text, PRIMARY KEY (region, n))",
    "mariadb": "CREATE TABLE regions (region varchar(40) NOT NULL, n int NOT NULL, v text, PRIMARY KEY (region, n)) "
    "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
}


@pytest.fixture(params=["postgres", "mariadb"])
def engine(request) -> str:
    return request.param


def _rows(count: int, start: int = 0) -> list[dict]:
    return [{"region": WORDS[i % len(WORDS)], "n": i, "v": f"v{i}"} for i in range(start, start + count)]


def _mapping(engine: str) -> dict:
    return {
        "rules": [
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "regions",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": "%", "table-name": "regions"},
                "target-table-name": "Regions",
                "mapping-parameters": {
                    "partition-key-name": "PK",
                    "attribute-mappings": [
                        {
                            "target-attribute-name": "PK",
                            "attribute-type": "scalar",
                            "attribute-sub-type": "string",
                            "value": "${region}#${n}",
                        }
                    ],
                },
            }
        ]
    }


def _source_execute(engine: str, url: str, sql: str, params: list | None = None) -> None:
    if engine == "postgres":
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
            connection.execute(sql.replace("?", "%s"), params or [])
        return
    from urllib.parse import urlparse

    parsed = urlparse(url)
    connection = pymysql.connect(
        host=parsed.hostname,
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.path.lstrip("/"),
        autocommit=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("?", "%s").replace('"', "`"), params or [])
    connection.close()


def _start(engine, make_source, settings, rows: list[dict], mapping: dict | None = None):
    settings.LIZZY_MIGRATION_UNIT_ROWS = UNIT_ROWS
    url = make_source(DDL, {"regions": rows})
    plan = plan_save(name="regions", source_url=url, mapping=mapping or _mapping(engine))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)
    return url, run


def _drain(queue: list[int]) -> None:
    while queue:
        segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))


def _written() -> list[str]:
    return sorted(item["PK"] for item in dynamodb_scan_segment(table="Regions", consistent=True))


def _keys(rows: list[dict]) -> list[str]:
    return sorted(f"{row['region']}#{row['n']}" for row in rows)


def test_composite_collated_keys_are_read_once_each_by_units_cut_ahead(engine, make_source, dynamodb, settings):
    rows = _rows(60)
    _url, run = _start(engine, make_source, settings, rows)

    _drain([run.segments.get().pk])

    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 60, 60)
    assert _written() == _keys(rows)
    units = list(run.segments.order_by("index"))
    assert sum(unit.rows_read for unit in units) == 60
    assert all(unit.done and not unit.open_ended for unit in units)
    assert len(units) == -(-60 // UNIT_ROWS)


@pytest.mark.parametrize("change", ["grow", "shrink"])
def test_a_table_that_changes_between_the_two_probes_is_still_read_once(
    engine, make_source, dynamodb, settings, monkeypatch, change
):
    # given a table of 40 rows, and rows inserted (or deleted) right after the first cut's first probe, before
    # any row is read: in the range of the unit cut, of the unit cut ahead and of the rest
    rows = _rows(40)
    url, run = _start(engine, make_source, settings, rows)
    source_class = None
    calls = []
    added: list[dict] = []
    removed: list[dict] = []

    with plan_context(plan=run.plan) as context:
        source_class = type(context.source)
    real = source_class.key_after

    def key_after(self, relation, *, after, rows, since=None):
        calls.append(after)
        if len(calls) == 2:  # between the first probe and the second of the run's first cut
            batch = len(calls)
            if change == "grow":
                new = [{"region": word, "n": 1000 + batch * 20 + i, "v": "new"} for i, word in enumerate(WORDS)]
                for row in new:
                    _source_execute(engine, url, 'INSERT INTO "regions" VALUES (?, ?, ?)', list(row.values()))
                added.extend(new)
            else:
                left = [row for row in rows_now() if row not in removed]
                for row in left[len(left) // 3 :: 4]:
                    delete = 'DELETE FROM "regions" WHERE region = ? AND n = ?'
                    _source_execute(engine, url, delete, [row["region"], row["n"]])
                    removed.append(row)
        return real(self, relation, after=after, rows=rows, since=since)

    def rows_now():
        return [*rows, *added]

    monkeypatch.setattr(source_class, "key_after", key_after)

    # when the units run as queued
    _drain([run.segments.get().pk])

    # then every row in the table when its unit read it is written, once
    final = [row for row in rows_now() if row not in removed]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert _written() == _keys(final)
    assert run.items_written == len(final)


def test_a_failed_run_whose_open_ended_unit_was_cut_ahead_resumes_with_every_row_once(
    engine, make_source, dynamodb, settings
):
    # given a run whose third unit (the open-ended one after the first cut) fails on its first write
    settings.LIZZY_MIGRATION_UNIT_RETRIES = 0
    rows = _rows(50)
    _url, run = _start(engine, make_source, settings, rows)
    queue = [run.segments.get().pk]
    segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))  # unit 0: cuts 1 and 2
    segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))  # unit 1: cut ahead

    def failing(operation, params, send):
        if operation == "BatchWriteItem":
            raise client_error("InternalServerError", "boom", operation)
        return send(params)

    with fault_injection(failing), pytest.raises(RunFailed):
        segment_run(segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk))  # unit 2: cut, then fails
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED

    # when it is resumed and every unit left runs (the queued ones too, redelivered)
    run_reopen(run=run)
    _drain(list(run.segments.filter(done=False).values_list("pk", flat=True)) + queue)

    # then every row is written once and the run succeeded
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 50, 50)
    assert _written() == _keys(rows)
    assert Segment.objects.filter(run=run, done=False).count() == 0


def test_a_filtered_table_is_cut_ahead_over_the_selected_rows_only(engine, make_source, dynamodb, settings):
    rows = _rows(60)
    mapping = _mapping(engine)
    mapping["rules"].insert(
        0,
        {
            "rule-type": "selection",
            "rule-id": "0",
            "rule-name": "pick",
            "object-locator": {"schema-name": "%", "table-name": "regions"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "n",
                    "filter-conditions": [{"filter-operator": "gte", "value": "17"}],
                }
            ],
        },
    )
    _url, run = _start(engine, make_source, settings, rows, mapping)

    _drain([run.segments.get().pk])

    selected = [row for row in rows if row["n"] >= 17]
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, len(selected), len(selected))
    assert _written() == _keys(selected)
    assert run.segments.count() == -(-len(selected) // UNIT_ROWS)


def test_a_runner_whose_lease_is_taken_over_between_its_two_probes_cuts_nothing(
    engine, make_source, dynamodb, settings, monkeypatch
):
    # given runner A between its two probes of the open-ended unit, its lease expired, and runner B taking the
    # unit over and running it to its end (cut, cut ahead, pages)
    from django.utils import timezone

    from migration_app.services.runs import LeaseLost, segment_backfill

    rows = _rows(30)
    _url, run = _start(engine, make_source, settings, rows)
    unit = run.segments.get()
    with plan_context(plan=run.plan) as context:
        source_class = type(context.source)
    real = source_class.key_after
    state = {"calls": 0, "b_queued": []}

    def key_after(self, relation, *, after, rows, since=None):
        state["calls"] += 1
        found = real(self, relation, after=after, rows=rows, since=since)
        if state["calls"] == 1:  # A's first probe: A stalls, its lease expires, B takes over
            Segment.objects.filter(pk=unit.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
            segment_backfill(segment_id=unit.pk, owner="runner-b", on_unit=state["b_queued"].append)
        return found

    monkeypatch.setattr(source_class, "key_after", key_after)
    a_queued = []

    # when A goes on
    with pytest.raises(LeaseLost):
        segment_backfill(segment_id=unit.pk, owner="runner-a", on_unit=a_queued.append)

    # then A created and queued nothing; B's units tile the table and, run, read every row once
    monkeypatch.setattr(source_class, "key_after", real)
    assert a_queued == []
    assert [(u.index, u.open_ended) for u in run.segments.order_by("index")] == [(0, False), (1, False), (2, True)]
    _drain([u.pk for u in state["b_queued"]])
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 30, 30)
    assert _written() == _keys(rows)


@pytest.mark.django_db(transaction=True)
def test_two_machines_with_four_threads_each_read_every_row_once(engine, make_source, dynamodb, settings):
    # given a run of 120 rows in units of 7, and two runners (two "machines") of 4 threads started at once
    import threading

    from django.db import connections

    from migration_app.services.runs import run_execute

    rows = _rows(120)
    _url, run = _start(engine, make_source, settings, rows)
    errors = []

    def machine():
        try:
            with plan_context(plan=run.plan) as context:
                run_execute(run=run, context=context, workers=4)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=machine) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 120, 120)
    assert _written() == _keys(rows)
    assert sum(run.segments.values_list("attempts", flat=True)) == run.segments.count()  # each unit leased once


def test_sqlite_keys_of_every_storage_class_are_read_once_each_by_units_cut_ahead(dynamodb, sqlite_source, settings):
    # given a key column without a declared type: integers, reals, text and blobs in one column (SQLite orders
    # them by storage class, then by value), composite with an integer
    settings.LIZZY_MIGRATION_UNIT_ROWS = 5
    keys = [*range(-3, 9), 2.5, -0.5, 1e20, "a", "B", "", "10", " ", b"\x00", b"\xff", b"a"]
    rows = [{"k": key, "n": n % 2, "v": str(n)} for n, key in enumerate(keys)]
    url = sqlite_source(
        "CREATE TABLE mixed (k NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n))", {"mixed": rows}
    )
    mapping = _mapping("sqlite")
    locator = mapping["rules"][0]["object-locator"]
    locator["table-name"] = "mixed"
    mapping["rules"][0]["mapping-parameters"]["attribute-mappings"][0]["value"] = "${v}"
    plan = plan_save(name="mixed", source_url=url, mapping=mapping)
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_create(context=context)

    _drain([run.segments.get().pk])

    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, len(keys), len(keys))
    assert _written() == sorted(row["v"] for row in rows)
