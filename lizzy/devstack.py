"""``make run``: the whole product on a laptop with nothing installed but Python.

Starts a local DynamoDB endpoint (moto's server mode, in memory) unless AWS_ENDPOINT_URL_DYNAMODB is
set, prepares the database and tables, loads demo data, makes sure an admin user exists, then runs
the web server, a Celery worker and Celery beat until Ctrl-C, which stops everything it started.

A calm start: each process writes to ``var/logs/<name>.log``; the terminal shows one block saying what runs
where and how to sign in, then only lines that point at a problem (warnings, errors, tracebacks), without
the noise of normal events (the local endpoint's access log, where a 400 is a conditional write losing a
race as designed; Celery's "running as root" warning on a laptop shell that is root).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name; in var/: the generated password, so every start can print it
RESET_PASSWORD_HINT = "python manage.py changepassword {user}"  # noqa: S105 - a command
STOP_SECONDS = 15

# Lines that look alarming but report normal events; everything else at warning level or above is shown.
BENIGN = (
    # moto's access log: DynamoDB answers a failed condition (optimistic locking at work) with a 400
    re.compile(r'"(GET|POST|PUT|DELETE|HEAD|OPTIONS) \S+ HTTP/1\.[01]" [1234]\d\d'),
    # Celery's warning when the shell is root (a container or a VM as root; production runs as a user)
    re.compile(r"SecurityWarning|running the worker with superuser privileges|absolutely not recommended"),
    re.compile(r"Please specify a different user using the --uid option|User information: uid=0"),
    re.compile(r"warnings\.warn\(SecurityWarning"),
    # runserver's reminder (make run is development by definition) and kombu's filesystem transport, which
    # has no host at all
    re.compile(r"This is a development server\. Do not use it in a production setting"),
    re.compile(r"No hostname was supplied\. Reverting to default 'localhost'"),
)
ALARMING = re.compile(
    r"\b(WARNING|ERROR|CRITICAL|FATAL|Traceback|Exception|Error:)|"
    r'"level": "(WARNING|ERROR|CRITICAL)"|'
    r'" 5\d\d '  # a 5xx in an access log
)


def line_is_shown(line: str) -> bool:
    """Whether a child's output line belongs on the terminal (it is always in the child's log file)."""
    if any(pattern.search(line) for pattern in BENIGN):
        return False
    return bool(ALARMING.search(line))


def _wait_for_port(host: str, port: int, timeout: float = 60.0, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"Nothing answered on {host}:{port} (see var/logs/).")


def _die_with_parent() -> None:
    """In the child (Linux): SIGTERM it when make run itself dies, so a killed make run leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def var_dir(env: dict[str, str]) -> Path:
    return Path(env.get("LIZZY_VAR_DIR") or ROOT / "var").resolve()


class Child:
    """One process of the stack: output to its log file, problem lines echoed to the terminal."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self.log = self.log_path.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches make run only; it stops each child in order
            preexec_fn=_die_with_parent,
        )
        self.stopping = False
        self.reader = threading.Thread(target=self._pump, name=f"devstack-{name}", daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            self.log.flush()
            if not self.stopping and line_is_shown(line):
                print(f"[{self.name}] {line.rstrip()}", flush=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the child itself (not its group: Celery's main process ends its pool children in order;
        a SIGTERM to each pool child is what logged "ForkPoolWorker exited with signal 15"), then SIGKILL."""
        self.stopping = True
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Until ``deadline`` (``time.monotonic()``), shared by every child: all were signalled at once, so
        the stack stops within STOP_SECONDS however many of them are slow, not STOP_SECONDS each."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[{self.name}] did not stop in {STOP_SECONDS} s; killed.", flush=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything it left behind in its group
        self.process.wait()
        self.reader.join(timeout=5)
        self.log.close()

    def tail(self, lines: int = 20) -> str:
        self.log.flush()
        return "".join(self.log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:])


def _prepare(env: dict[str, str], logs: Path) -> tuple[str, str]:
    """migrate, ensure_tables, seed_demo and the admin user, in one Django process (its output: prepare.log).

    Returns (admin user, how to sign in)."""
    with (logs / "prepare.log").open("a", encoding="utf-8") as log:
        done = subprocess.run(
            [PYTHON, "-m", "lizzy.devstack", "--prepare"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print((logs / "prepare.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise SystemExit(f"Preparing the database and tables failed (above; full log: {logs / 'prepare.log'}).")
    user, _, sign_in = done.stdout.strip().splitlines()[-1].partition("\t")
    return user, sign_in


def prepare_in_process() -> int:
    """The ``--prepare`` step, inside Django: progress to stderr (the log), "user<TAB>how to sign in" to stdout."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    for command in ("migrate", "ensure_tables", "seed_demo"):
        call_command(command, *(["--noinput"] if command == "migrate" else []), stdout=sys.stderr)
    env = dict(os.environ)
    name = env.get("DJANGO_SUPERUSER_USERNAME", "admin")
    reset = RESET_PASSWORD_HINT.format(user=name)
    path = var_dir(env) / ADMIN_PASSWORD_FILE
    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        password = env.get("DJANGO_SUPERUSER_PASSWORD")
        if not password:
            password = secrets.token_urlsafe(12)
            path.write_text(password + "\n", encoding="utf-8")
            path.chmod(0o600)
        user = get_user_model().objects.create_superuser(username=name, email="admin@localhost", password=password)
        print(f"created the admin user {name!r}", file=sys.stderr)
    if env.get("DJANGO_SUPERUSER_PASSWORD"):
        sign_in = f"password from DJANGO_SUPERUSER_PASSWORD (reset: {reset})"
    elif path.exists() and user.check_password(path.read_text(encoding="utf-8").strip()):
        sign_in = f"password {path.read_text(encoding='utf-8').strip()}  (reset: {reset})"
    else:
        sign_in = f"the password you set  (forgot it? {reset})"
    print(f"{name}\t{sign_in}")
    return 0


def banner(env: dict[str, str], port: str, dynamo: str, user: str, sign_in: str) -> str:
    base = f"http://127.0.0.1:{port}"
    var = var_dir(env)
    database = env.get("DATABASE_URL") or f"SQLite, {var / 'lizzy.sqlite3'}"
    cache = (
        f"Redis at {env['REDIS_URL']}"
        if env.get("REDIS_URL")
        else "no Redis: per-process memory; counters every process shares in the database"
    )
    broker = env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or f"filesystem, {var / 'celery-queue'}"
    rows = [
        ("Ops console", f"{base}/admin/   user {user}, {sign_in}"),
        ("REST API", f"{base}/api/v1/   token: python manage.py drf_create_token {user}"),
        ("API docs", f"{base}/api/docs/   (signed in to the console)"),
        ("DynamoDB", dynamo),
        ("Database", database),
        ("Cache", cache),
        ("Celery", f"worker + beat, broker {broker}"),
        ("Logs", f"{var / 'logs'}/  (problems also show here)"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "  Lizzy is running. Ctrl-C stops everything.", ""]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join([*lines, ""])


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
    env.setdefault("PYTHONUNBUFFERED", "1")
    port = env.get("PORT", "8000")
    logs = var_dir(env) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []

    def start(name: str, args: list[str]) -> Child:
        child = Child(name, args, env, logs)
        children.append(child)
        return child

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print("Starting Lizzy (logs in var/logs/) ...", flush=True)
    try:
        if env.get("AWS_ENDPOINT_URL_DYNAMODB"):
            dynamo = f"{env['AWS_ENDPOINT_URL_DYNAMODB']} (AWS_ENDPOINT_URL_DYNAMODB)"
        else:
            dynamo_port = int(env.get("LIZZY_LOCAL_DYNAMODB_PORT", "8001"))
            local = start("dynamodb", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(dynamo_port)])
            _wait_for_port("127.0.0.1", dynamo_port, alive=local.alive)
            env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{dynamo_port}"
            dynamo = f"{env['AWS_ENDPOINT_URL_DYNAMODB']}  (moto, in memory: stopping forgets every session)"
        user, sign_in = _prepare(env, logs)
        queues = f"celery,{env.get('LIZZY_MIGRATION_QUEUE', 'migrations')}"
        start(
            "worker",
            [PYTHON, "-m", "celery", "-A", "lizzy", "worker", "--loglevel=INFO", "--concurrency=2", "-Q", queues],
        )
        start("beat", [PYTHON, "-m", "celery", "-A", "lizzy", "beat", "--loglevel=INFO"])
        web = start("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"])
        _wait_for_port("127.0.0.1", int(port), alive=web.alive)
        print(banner(env, port, dynamo, user, sign_in), flush=True)
        while all(child.alive() for child in children):
            time.sleep(0.5)
        for child in children:
            if not child.alive():
                print(f"{child.name} exited ({child.process.returncode}); its last lines:\n{child.tail()}", flush=True)
        print("Stopping the rest.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        for child in reversed(children):  # web first, the endpoint last
            child.stop()
        deadline = time.monotonic() + STOP_SECONDS
        for child in reversed(children):
            child.wait(deadline)
        print("Stopped.", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--prepare"]:
        raise SystemExit(prepare_in_process())
    raise SystemExit(main())
