"""Load: many simulated SMS conversations through the signed webhook, against gunicorn on loopback.

Production settings (signature required), a real HTTP DynamoDB endpoint (moto under gunicorn), the
product under gunicorn with threads. Each conversation texts, checks its session's ``turnCount`` against
the turns the server acknowledged, and replays every tenth message with the same MessageSid (Twilio's
retry). Reported: requests, acknowledged turns, lost, duplicated, 5xx, p50/p95/p99.

    .venv/bin/python -m bench.sms_load --seconds 60 --conversations 200 --clients 16
    LIZZY_LOAD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/lizzy_i7 .venv/bin/python -m bench.sms_load

The product's database is a throwaway SQLite file unless LIZZY_LOAD_DATABASE_URL names one (it is migrated
and gets a ``load-checker`` user).

Exit status 1 when anything was lost, duplicated or answered 5xx. ``tests/load`` runs a 5 s version.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import ROOT, endpoint, free_port, wait_for_port
from bench.conversations import Send, Tally, WebhookConversation, run_conversations


def _environment(dynamodb_url: str, database_url: str, store_mode: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lizzy.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "DJANGO_SECURE_SSL_REDIRECT": "False",  # loopback HTTP; TLS ends at the load balancer in production
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ACCESS_KEY_ID": "load",
        "AWS_SECRET_ACCESS_KEY": "load",
        "LIZZY_ENV": f"load{uuid.uuid4().hex[:6]}",
        "DATABASE_URL": database_url,
        "LIZZY_SESSION_STORE_MODE": store_mode,
        "LIZZY_LOG_LEVEL": "WARNING",
        "LIZZY_API_THROTTLE_RATE": "",  # the checker's reads are the measurement, not a client to hold back
    }


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


# Python source run by `manage.py shell`, not a secret: it prints the token of a throwaway user.
MAKE_API_USER = (
    "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group; "
    "from rest_framework.authtoken.models import Token; "
    "u, _ = get_user_model().objects.get_or_create(username='load-checker'); "
    "u.groups.add(Group.objects.get(name='api_client')); "
    "print(Token.objects.get_or_create(user=u)[0].key)"
)


@contextlib.contextmanager
def product_server(
    *, database_url: str | None = None, store_mode: str = "dynamodb_only", workers: int = 2, threads: int = 8
) -> Iterator[dict[str, Any]]:
    """The product under gunicorn with production settings; yields its URL, webhook token and API token."""
    with endpoint("moto-gunicorn") as dynamodb_url, tempfile.TemporaryDirectory() as tmp:
        env = _environment(dynamodb_url, database_url or f"sqlite:///{Path(tmp) / 'load.sqlite3'}", store_mode)
        _manage(env, "migrate", "--noinput")
        _manage(env, "ensure_tables")
        api_token = _manage(env, "shell", "-c", MAKE_API_USER).strip().splitlines()[-1]
        port = free_port()
        proc = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "gunicorn",
                "lizzy.wsgi:application",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--worker-class",
                "gthread",
                "--bind",
                f"127.0.0.1:{port}",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(port)
            yield {"port": port, "webhook_token": env["TWILIO_AUTH_TOKEN"], "api_token": api_token}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def http_send_factory(port: int, api_token: str):
    """One keep-alive connection per client thread; reconnects after an error."""

    def factory() -> Send:
        state: dict[str, http.client.HTTPConnection | None] = {"conn": None}

        def send(method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
            headers = {"Authorization": f"Token {api_token}", **headers}
            if isinstance(body, dict):
                payload, headers["Content-Type"] = json.dumps(body), "application/json"
            else:
                payload = body
            for attempt in range(2):
                if state["conn"] is None:
                    state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    state["conn"].request(method, path, body=payload, headers=headers)
                    response = state["conn"].getresponse()
                    raw = response.read()
                    break
                except (ConnectionError, http.client.HTTPException):
                    state["conn"].close()
                    state["conn"] = None
                    if attempt:
                        return 599, None, {}  # the connection failed twice: counted as a 5xx
            ctype = response.getheader("Content-Type", "")
            data = json.loads(raw) if raw and ctype.startswith("application/json") else None
            return response.status, data, dict(response.getheaders())

        return send

    return factory


def signer(port: int, token: str):
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(token)

    def sign(path: str, fields: dict[str, str]) -> str:
        return validator.compute_signature(f"http://127.0.0.1:{port}{path}", fields)

    return sign


def run(
    *,
    seconds: float = 60,
    conversations: int = 200,
    clients: int = 16,
    database_url: str | None = None,
    store_mode: str = "dynamodb_only",
    workers: int = 2,
    threads: int = 8,
) -> dict[str, Any]:
    """One load run; returns the tally's summary (plus the parameters)."""
    with product_server(database_url=database_url, store_mode=store_mode, workers=workers, threads=threads) as srv:
        sign = signer(srv["port"], srv["webhook_token"])
        phones = [f"+1312555{n:04d}" for n in range(conversations)]
        tally, _ = run_conversations(
            phones=phones,
            send_factory=http_send_factory(srv["port"], srv["api_token"]),
            seconds=seconds,
            workers=clients,
            tally=Tally(),
            conversation=lambda phone, send, tally: WebhookConversation(phone, send, tally, sign=sign),
        )
    return {
        "seconds": seconds,
        "conversations": conversations,
        "clients": clients,
        "gunicorn": f"{workers}x{threads} gthread",
        "store_mode": store_mode,
        **tally.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--store-mode", default="dynamodb_only")
    args = parser.parse_args()
    summary = run(
        seconds=args.seconds,
        conversations=args.conversations,
        clients=args.clients,
        database_url=os.environ.get("LIZZY_LOAD_DATABASE_URL"),
        store_mode=args.store_mode,
        workers=args.workers,
        threads=args.threads,
    )
    print(json.dumps(summary, indent=2))
    return 1 if summary["lost"] or summary["duplicated"] or summary["errors_5xx"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
