"""Finding 5, across processes and without Redis: the sign-in counters were per worker (local memory cache).

Two gunicorn servers (production settings, no REDIS_URL) share one database, and so the database cache
that holds the counters. Failures alternate between them; the lockout must hold on both, a known browser
must still get in, and ``manage.py login_unlock`` must clear it for everyone.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bench.common import ROOT, free_port, wait_for_port
from bench.sms_load import _environment, _manage
from lizzy.admin_login import DEVICE_COOKIE
from tests.figures import record_figure

PASSWORD = "a-long-staff-password-for-lockout-1"  # noqa: S105 - a test user
LIMIT = 4
MAKE_OWNER = (
    "from django.contrib.auth import get_user_model; "
    f"get_user_model().objects.create_user(username='ops-owner', password='{PASSWORD}', is_staff=True)"
)


@contextlib.contextmanager
def two_servers() -> Iterator[tuple[list[int], dict[str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _environment("http://127.0.0.1:9", f"sqlite:///{Path(tmp) / 'lockout.sqlite3'}", "dynamodb_only")
        for name in ("REDIS_URL", "LIZZY_SESSION_REDIS_URL"):
            env.pop(name, None)
        env |= {"CELERY_BROKER_URL": "memory://", "LIZZY_LOGIN_FAILURE_LIMIT": str(LIMIT)}
        _manage(env, "migrate", "--noinput")
        _manage(env, "shell", "-c", MAKE_OWNER)
        ports, procs = [free_port(), free_port()], []
        for port in ports:
            procs.append(
                subprocess.Popen(  # noqa: S603 - our own server
                    [sys.executable, "-m", "gunicorn", "lizzy.wsgi:application", "--workers", "1", "--threads", "2"]
                    + ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        try:
            for port in ports:
                wait_for_port(port)
            yield ports, env
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


class Browser:
    """Cookies kept by hand (production cookies are Secure; this is loopback HTTP)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(self, port: int, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        conn.close()
        return response.status, text

    def sign_in(self, port: int, password: str) -> str:
        """ "in", "locked" or "refused" (wrong password)."""
        _status, page = self.request(port, "GET", "/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"csrfmiddlewaretoken": token, "username": "ops-owner", "password": password, "next": "/admin/"}
        status, page = self.request(port, "POST", "/admin/login/", urlencode(form))
        if status == 302:
            self.cookies.pop("sessionid", None)  # signed in; sign out by forgetting the session
            return "in"
        return "locked" if "Too many failed sign-in attempts" in page else "refused"


@pytest.mark.integration
def test_the_lockout_is_shared_by_processes_without_redis_and_spares_a_known_browser():
    with two_servers() as (ports, env):
        owner = Browser()
        assert owner.sign_in(ports[0], PASSWORD) == "in"
        assert DEVICE_COOKIE in owner.cookies

        attacker = Browser()
        attempts = [attacker.sign_in(ports[index % 2], "wrong-password") for index in range(LIMIT)]
        locked = [Browser().sign_in(port, PASSWORD) for port in ports]  # unknown clients, right password
        owner_after = [owner.sign_in(port, PASSWORD) for port in ports]
        _manage(env, "login_unlock", "ops-owner")
        unlocked = Browser().sign_in(ports[1], PASSWORD)
    record_figure(
        "login_lockout/two_processes_no_redis",
        failures=attempts,
        unknown_clients=locked,
        known_browser=owner_after,
        after_unlock=unlocked,
    )
    assert attempts == ["refused"] * LIMIT  # two on each server
    assert locked == ["locked", "locked"]  # was ["in", "in"]: each process had counted only half
    assert owner_after == ["in", "in"]
    assert unlocked == "in"
