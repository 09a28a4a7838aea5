"""Shared pieces of the benchmarks: endpoints, timing, result rows.

Every benchmark compares the product (A) with the best this machine can do on the same endpoint in the same
run (B) and reports A/B as the median of several runs; absolute times on a shared 2-core machine are noise.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    bench: str
    metric: str
    a_label: str
    a: float
    b_label: str
    b: float
    unit: str
    target: str
    endpoint: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.a / self.b if self.b else float("inf")

    def row(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


# Endpoints served by gunicorn's threaded worker (keep-alive), by kind.
_GUNICORN_APPS = {"moto-gunicorn": "bench.moto_wsgi:application", "stub": "bench.stub_wsgi:application"}


@contextlib.contextmanager
def endpoint(kind: str, env: dict[str, str] | None = None, threads: int = 8) -> Iterator[str]:
    """A local DynamoDB endpoint: ``moto`` (moto_server, Werkzeug), ``moto-gunicorn`` (keep-alive), or
    ``stub`` (canned answers under gunicorn: the cost of HTTP + botocore alone, no database behind it)."""
    port = free_port()
    if kind == "moto":
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif kind in _GUNICORN_APPS:
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            _GUNICORN_APPS[kind],
            "--workers",
            "1",  # the app's state is per process: one worker, threads for concurrency
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
        ]
    else:
        raise ValueError(kind)
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group; SIGKILL it if a loaded machine keeps it from exiting in 10 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def setup_django(endpoint_url: str | None = None, env_suffix: str | None = None) -> None:
    """Configure Django for a benchmark process (local settings, the given endpoint, private tables)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    # the benchmarks' PostgreSQL sources are the machine's server reached as its superuser, a trusted source here
    os.environ.setdefault("LIZZY_SOURCE_ALLOW_PRIVILEGED_ROLE", "1")
    # No cost-ledger writes (once a minute, to Django's database, which most benchmark processes never
    # migrate: each attempt logged a traceback); what is measured is the DynamoDB and Redis path.
    os.environ.setdefault("LIZZY_CAPACITY_FLUSH_SECONDS", "-1")
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint_url
    os.environ["LIZZY_ENV"] = env_suffix or f"bench{uuid.uuid4().hex[:6]}"
    import django

    django.setup()
    from django.conf import settings

    if endpoint_url:
        settings.AWS_ENDPOINT_URL_DYNAMODB = endpoint_url
    settings.LIZZY_ENV = os.environ["LIZZY_ENV"]
    # Pinned, as in production settings files: no database lookup of the mode (benchmarks that need
    # another mode set it themselves).
    settings.LIZZY_SESSION_STORE_MODE = settings.LIZZY_SESSION_STORE_MODE or "dynamodb_only"
    from lizzy.dynamodb import reset_client

    reset_client()


def raw_client(endpoint_url: str):
    """The baseline: a plain boto3 client, same endpoint, same botocore defaults a careful user would pick."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - a local endpoint
        config=Config(retries={"mode": "standard"}, max_pool_connections=32, tcp_keepalive=True),
    )


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: ``BENCH_REDIS_URL`` if set, else a private ``redis-server`` on a free loopback port.

    A private server keeps the benchmarks off the shared Redis (other people's keys, other people's load)
    and lets them FLUSHDB freely.
    """
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        yield url
        return
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def use_redis(url: str, prefix: str | None = None) -> None:
    """Point the product's session Redis at ``url`` with a private key prefix (after setup_django)."""
    from django.conf import settings

    from lizzy.redis import reset_redis

    settings.REDIS_URL = url
    settings.LIZZY_SESSION_REDIS_URL = url
    settings.LIZZY_REDIS_PREFIX = prefix or f"lizzy:bench{uuid.uuid4().hex[:6]}:"
    reset_redis()


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 is a latency some request really had)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def profiled(name: str, fn: Callable[[], object]) -> None:
    """With ``BENCH_PROFILE=1``, run ``fn`` once more under pyinstrument; the text tree goes to bench/results/.

    Profiles explain a missed target (docs/BENCHMARKS.md quotes them); they never change the figures,
    which are taken before this run.
    """
    if os.environ.get("BENCH_PROFILE") != "1":
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    fn()
    profiler.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"profile-{name}.txt").write_text(profiler.output_text(unicode=True, show_all=False))


def compare(runs: int, product: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float]:
    """Medians of A and B measured in alternation (A, B, A, B...), after one warm-up of each.

    Alternating keeps a burst of load from other processes on this shared machine from landing on one
    side only; the ratio is of the two medians.
    """
    product(), raw()
    a_runs, b_runs = [], []
    for _ in range(runs):
        a_runs.append(product())
        b_runs.append(raw())
    return statistics.median(a_runs), statistics.median(b_runs)


def compare_many(
    runs: int, product: Callable[[], float], baselines: list[Callable[[], float]]
) -> tuple[float, list[float]]:
    """``compare`` with several baselines, after one warm-up of each; medians.

    The order rotates every round (A, B1, B2; B1, B2, A; B2, A, B1...), so that no side always runs right
    after the same other one (a write leaves state the next one pays for, a burst lands on one position).
    """
    sides = [product, *baselines]
    for side in sides:
        side()
    measured: list[list[float]] = [[] for _ in sides]
    for round_ in range(runs):
        for offset in range(len(sides)):
            index = (round_ + offset) % len(sides)
            measured[index].append(sides[index]())
    return statistics.median(measured[0]), [statistics.median(values) for values in measured[1:]]
