"""Every benchmark still runs (tiny N, ``--smoke``): CI catches a benchmark broken by a product change.

Figures are never asserted against the targets here (a shared CI machine says nothing about them);
only that each benchmark produced its rows with positive A and B.
"""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest

from bench.run import BENCHES, run_bench


@pytest.fixture
def bench_env(monkeypatch, redis_url, postgres_url):
    """The benchmarks' processes: local settings, a Redis, and throwaway PostgreSQL databases."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
    if not shutil.which("redis-server"):
        monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # else each benchmark starts a private one
    admin_url = postgres_url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"
    names = [f"lizzy_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    monkeypatch.setenv("BENCH_STATE_URL", f"{base}/{names[0]}")
    monkeypatch.setenv("BENCH_PG_SOURCE", f"{base}/{names[1]}")
    yield
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_in_smoke_mode(name, bench_env):
    rows = run_bench(name, smoke=True)
    assert rows, f"{name} reported nothing"
    for row in rows:
        assert row["a"] >= 0, row  # DynamoDB calls per write-behind turn: 0
        assert row["b"] > 0, row
        assert row["unit"], row
