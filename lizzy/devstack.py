"""``make run``: the whole product on a laptop with nothing installed but Python.

Starts a local DynamoDB endpoint (moto's server mode, in memory) unless AWS_ENDPOINT_URL_DYNAMODB is
set, prepares the database and tables, loads demo data, makes sure an admin user exists, then runs
the web server, a Celery worker and Celery beat until Ctrl-C, which stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"Nothing answered on {host}:{port} after {timeout:.0f} s.")


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _ensure_admin(env: dict[str, str]) -> None:
    code = (
        "from django.contrib.auth import get_user_model; import os, sys;"
        "U = get_user_model(); name = os.environ.get('DJANGO_SUPERUSER_USERNAME', 'admin');"
        "sys.exit(0 if U.objects.filter(username=name).exists() else 3)"
    )
    exists = subprocess.run([PYTHON, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=False).returncode == 0
    if exists:
        return
    admin_env = dict(env)
    generated = None
    if not admin_env.get("DJANGO_SUPERUSER_PASSWORD"):
        generated = secrets.token_urlsafe(12)
        admin_env["DJANGO_SUPERUSER_USERNAME"] = admin_env.get("DJANGO_SUPERUSER_USERNAME", "admin")
        admin_env["DJANGO_SUPERUSER_PASSWORD"] = generated
    admin_env.setdefault("DJANGO_SUPERUSER_EMAIL", "admin@localhost")
    _manage("createsuperuser", "--noinput", env=admin_env)
    if generated:
        print(
            f"\n  Admin user: {admin_env['DJANGO_SUPERUSER_USERNAME']}  password: {generated}  (shown once)\n",
            flush=True,
        )


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
    env.setdefault("PYTHONUNBUFFERED", "1")
    port = env.get("PORT", "8000")
    children: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> None:
        print(f"==> starting {name}: {' '.join(args)}", flush=True)
        children.append(subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True))

    def stop(*_args: object) -> None:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not env.get("AWS_ENDPOINT_URL_DYNAMODB"):
            dynamo_port = int(env.get("LIZZY_LOCAL_DYNAMODB_PORT", "8001"))
            start(
                "local DynamoDB (moto, in memory)",
                [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(dynamo_port)],
            )
            _wait_for_port("127.0.0.1", dynamo_port)
            env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{dynamo_port}"
        _manage("migrate", "--noinput", env=env)
        _manage("ensure_tables", env=env)
        _manage("seed_demo", env=env)
        _ensure_admin(env)
        queues = f"celery,{env.get('LIZZY_MIGRATION_QUEUE', 'migrations')}"
        start(
            "Celery worker",
            [PYTHON, "-m", "celery", "-A", "lizzy", "worker", "--loglevel=INFO", "--concurrency=2", "-Q", queues],
        )
        start("Celery beat", [PYTHON, "-m", "celery", "-A", "lizzy", "beat", "--loglevel=INFO"])
        start("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"])
        print(
            f"\n  Lizzy is up: http://127.0.0.1:{port}/admin/  and  http://127.0.0.1:{port}/api/v1/  (Ctrl-C stops)\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child.args for child in children if child.poll() is not None]
        print(f"A process exited: {failed}; stopping the rest.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stop()


if __name__ == "__main__":
    raise SystemExit(main())
