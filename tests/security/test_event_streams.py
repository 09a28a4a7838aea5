"""Finding 4: as many event streams as gunicorn has threads made /healthz time out and held the webhook.

Real concurrent streams against the product under gunicorn (production settings, 2 workers x 4 threads,
``-c python:lizzy.observability.gunicorn``), Redis for the events. Each request gets a status line within a
socket timeout or counts as *waiting*: nothing here measures time.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from bench.common import ROOT, endpoint, free_port, wait_for_port
from bench.sms_load import _environment, _manage
from tests.figures import record_figure

WORKERS, THREADS = 2, 4
ANSWER_TIMEOUT = 15.0  # seconds a request may take to get its status line before it counts as waiting
MAKE_VIEWERS = (
    "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group; "
    "from rest_framework.authtoken.models import Token; U = get_user_model()\n"
    "for name in ('stream-a', 'stream-b'):\n"
    "    u = U.objects.create_user(username=name, is_staff=True); u.groups.add(Group.objects.get(name='viewer'))\n"
    "    print(Token.objects.create(user=u).key)"
)


@contextlib.contextmanager
def product(redis_url: str, **limits: str) -> Iterator[dict]:
    with endpoint("moto-gunicorn") as dynamodb_url, tempfile.TemporaryDirectory() as tmp:
        env = _environment(dynamodb_url, f"sqlite:///{Path(tmp) / 'streams.sqlite3'}", "dynamodb_only")
        env |= {"REDIS_URL": redis_url, "CELERY_BROKER_URL": "memory://", **limits}
        env.pop("LIZZY_SESSION_REDIS_URL", None)
        _manage(env, "migrate", "--noinput")
        _manage(env, "ensure_tables")
        tokens = _manage(env, "shell", "-c", MAKE_VIEWERS).strip().splitlines()[-2:]
        port = free_port()
        proc = subprocess.Popen(  # noqa: S603 - our own server
            [
                *(sys.executable, "-m", "gunicorn", "lizzy.wsgi:application"),
                *("-c", "python:lizzy.observability.gunicorn", "--worker-class", "gthread"),
                *("--workers", str(WORKERS), "--threads", str(THREADS), "--bind", f"127.0.0.1:{port}"),
                *("--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(port)
            _warm(port, tokens[0])
            yield {"port": port, "tokens": tokens, "webhook_token": env["TWILIO_AUTH_TOKEN"]}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _status(port: int, method: str, path: str, headers: dict, body: str | None = None, keep: list | None = None):
    """The status code, or "waiting" when no status line came within ANSWER_TIMEOUT."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        status = conn.getresponse().status
    except (TimeoutError, OSError):
        conn.close()
        return "waiting"
    if keep is not None:
        keep.append(conn)  # a stream: held open until the test ends
    else:
        conn.close()
    return status


def _warm(port: int, token: str) -> None:
    """Each worker's first requests import and build what later ones reuse: make them before measuring."""
    headers = {"Authorization": f"Token {token}"}
    with ThreadPoolExecutor(WORKERS * 2) as pool:
        for _ in range(3):
            list(pool.map(lambda _: _status(port, "GET", "/api/v1/migrations/plans/", headers), range(WORKERS * 2)))


def _open_streams(server: dict, token: str, count: int, held: list) -> list:
    headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
    with ThreadPoolExecutor(count) as pool:
        futures = [
            pool.submit(_status, server["port"], "GET", "/api/v1/events/sessions?seconds=60", headers, None, held)
            for _ in range(count)
        ]
        return [future.result() for future in futures]


def _webhook(server: dict, sid: str):
    url = f"http://127.0.0.1:{server['port']}/api/v1/sms/inbound"
    fields = {"From": "+12065550100", "To": "+18005551212", "Body": "hi", "MessageSid": sid}
    signature = RequestValidator(server["webhook_token"]).compute_signature(url, fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return _status(server["port"], "POST", "/api/v1/sms/inbound", headers, urlencode(fields))


@pytest.mark.integration
def test_streams_cannot_take_the_threads_of_the_webhook_and_the_probes(redis_url):
    # given: streams unbounded per user and in total; only the per-process bound (half the threads) holds
    held: list = []
    with product(redis_url, LIZZY_EVENT_STREAMS_PER_USER="100", LIZZY_EVENT_STREAMS_TOTAL="100") as server:
        try:
            # when: three times as many streams as a worker has threads, from one token
            streams = _open_streams(server, server["tokens"][0], WORKERS * THREADS + 4, held)
            probes = [_status(server["port"], "GET", "/healthz", {}) for _ in range(10)]
            webhooks = [_webhook(server, f"SMstream{index}") for index in range(3)]
        finally:
            for conn in held:
                conn.close()
    opened = streams.count(200)
    record_figure(
        "event_streams/starvation",
        streams_requested=len(streams),
        opened=opened,
        refused_429=streams.count(429),
        waiting=streams.count("waiting"),
        healthz=probes,
        webhook=webhooks,
    )
    # then: at most half of each worker's threads stream; the rest are refused at once, nothing waits
    assert 1 <= opened <= WORKERS * THREADS // 2, streams
    assert streams.count(429) == len(streams) - opened, streams
    assert probes == [200] * 10  # was: "waiting" while the streams held every thread
    assert webhooks == [200] * 3


@pytest.mark.integration
def test_streams_are_bounded_per_user_and_in_total_across_workers(redis_url):
    held: list = []
    limits = {"LIZZY_EVENT_STREAMS_PER_USER": "2", "LIZZY_EVENT_STREAMS_TOTAL": "3"}
    with product(redis_url, LIZZY_EVENT_STREAMS_PER_PROCESS="10", **limits) as server:
        try:
            first = _open_streams(server, server["tokens"][0], 3, held)
            second = _open_streams(server, server["tokens"][1], 2, held)
        finally:
            for conn in held:
                conn.close()
    record_figure("event_streams/bounds", user_a=first, user_b=second)
    assert sorted(first, key=str) == [200, 200, 429]  # two per user
    assert sorted(second, key=str) == [200, 429]  # three in total, counted across both workers
