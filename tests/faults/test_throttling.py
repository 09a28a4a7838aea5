"""DynamoDB throttling injected by a proxy in front of the local endpoint (tests/fixtures/fault_proxy.py).

Throttling errors on a share of all calls plus at least 30 % of every batch returned unprocessed: the
write-behind flush and a migration backfill must still complete, and validate clean.
"""

from __future__ import annotations

import sqlite3
import uuid

from lizzy.dynamodb import dynamodb_batch_get, reset_client
from lizzy.tables import SESSIONS
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.validation import plan_validate
from sessions_app.services.sessions import session_new, session_save
from sessions_app.services.store.write_behind import flush_backlog, sessions_flush
from tests.figures import record_figure
from tests.migration_app.factories import THINGS_DDL, things_mapping, things_rows

SESSION_COUNT = 120


def test_write_behind_flush_completes_and_validates_under_throttling(
    live_dynamodb, own_redis, fault_proxy, settings, monkeypatch
):
    # given: 120 sessions acknowledged in Redis only, each at version 2
    settings.LIZZY_SESSION_STORE_MODE = "cached_write_behind"
    phones = [f"+1206556{n:04d}" for n in range(SESSION_COUNT)]
    expected = {}
    for phone in phones:
        first = session_save(session=session_new(phone=phone), expected_version=None)
        first.session_data["turns"] = 2
        expected[phone] = session_save(session=first, expected_version=first.version).version
    assert flush_backlog().size == SESSION_COUNT

    # when: 10 % of calls are throttled and 40 % of each batch comes back unprocessed. The batch backoff
    # base is cut tenfold so the run fits in CI; the retry logic and attempt limit are the product's.
    monkeypatch.setattr("lizzy.dynamodb.batch.BATCH_BACKOFF_BASE_SECONDS", 0.005)
    # The proxy's faults come from a seeded generator: with one BatchWriteItem in flight they are drawn
    # in the same order every run. Concurrent chunks (the default, 4) would draw them in thread order,
    # and with 40 % held back a chunk can exhaust its 10 attempts (it did once in a loaded full-suite run).
    settings.LIZZY_FLUSH_CONCURRENCY = 1
    proxy = fault_proxy(throttle_rate=0.1, unprocessed_rate=0.4)
    runs = []
    while flush_backlog().size and len(runs) < 5:  # the beat would run it again; it should not need to
        runs.append(sessions_flush())

    # then: the flush completed, and DynamoDB holds every session at the version Redis acknowledged
    settings.AWS_ENDPOINT_URL_DYNAMODB = live_dynamodb  # validate without the proxy
    reset_client()
    items = dynamodb_batch_get(table=SESSIONS.name, keys=[{"phone": p} for p in phones], consistent=True)
    stored = {item["phone"]: item for item in items}
    mismatched = [p for p in phones if p not in stored or int(stored[p]["version"]) != expected[p]]
    record_figure(
        "faults/throttling-write-behind-flush",
        sessions=SESSION_COUNT,
        flush_runs=len(runs),
        written=sum(r.written for r in runs),
        batch_calls=proxy.stats.calls.get("BatchWriteItem", 0),
        throttled=sum(proxy.stats.throttled.values()),
        unprocessed_share=round(proxy.stats.unprocessed_share, 3),
        keys_held_back=proxy.stats.keys_held_back,
        mismatched=len(mismatched),
    )
    # the flush writes one conditional PutItem per session (BatchWriteItem takes no condition): throttled
    # puts are retried by botocore, and one that still fails stays dirty for the next run
    assert sum(proxy.stats.throttled.values()) > 0
    assert flush_backlog().size == 0
    assert mismatched == []


def test_backfill_completes_and_validates_clean_under_throttling(live_dynamodb, fault_proxy, db, tmp_path, monkeypatch):
    # given: a 400-row source and its target table (created before the faults start)
    path = tmp_path / "source.sqlite3"
    with sqlite3.connect(path) as source:
        source.executescript(THINGS_DDL)
        for row in things_rows(400):
            source.execute("INSERT INTO things VALUES (:id, :name, :price, :active, :updated_at, :tags)", row)
    table = f"Things-{uuid.uuid4().hex[:8]}"
    plan = plan_save(name=f"throttled-{table}", source_url=f"sqlite:///{path}", mapping=things_mapping(table=table))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)

    # when: the backfill and the validation run behind the proxy (5 % throttled, 40 % of batches held back)
    monkeypatch.setattr("lizzy.dynamodb.batch.BATCH_BACKOFF_BASE_SECONDS", 0.005)
    proxy = fault_proxy(throttle_rate=0.05, unprocessed_rate=0.4, seed=11)
    with plan_context(plan=plan) as context:
        run = run_execute(run=run_create(context=context), context=context)
    report = plan_validate(plan=plan)

    record_figure(
        "faults/throttling-backfill",
        rows=400,
        run_status=run.status,
        items_written=run.items_written,
        unprocessed_retries=run.unprocessed_retries,
        throttle_retries=run.throttle_retries,
        throttled=sum(proxy.stats.throttled.values()),
        unprocessed_share=round(proxy.stats.unprocessed_share, 3),
        clean=report.clean,
    )
    # then
    assert proxy.stats.unprocessed_share >= 0.3
    assert sum(proxy.stats.throttled.values()) > 0
    assert run.status == "succeeded", run.last_error
    assert run.items_written == 400
    assert report.clean
