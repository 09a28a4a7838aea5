"""The docs run as written: every ```sh block in README.md and docs/ is executed, against ``make run``'s own stack.

The module starts ``python -m lizzy.devstack`` (what ``make run`` runs) on free ports with a temporary var
directory (SQLite, the filesystem broker, the local DynamoDB endpoint in memory), checks the block it prints,
runs each block as a user would in a second terminal (a checkout whose ``var/`` is that directory, ``.venv/bin``
first on ``PATH``), then stops the stack with Ctrl-C and checks it stopped quietly.

- A block runs with ``set -e -o pipefail``; ``curl`` fails on an HTTP error (``--fail-with-body``), so a
  documented request that answers 4xx fails the test.
- The documented ports (8000 web, 8001 local endpoint) are replaced by the free ports of this run.
- ``<!-- docs-test: skip (why) -->`` on the line before a block exempts it: for servers that never exit
  (``make run``, workers, gunicorn) and multi-minute benchmarks, which other tests run. The reason is required.
- A fence without a language that holds commands fails the test: tag it ``sh`` so it runs, or mark it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
LOOKS_LIKE_A_COMMAND = re.compile(
    r"^\s*(?:[A-Z_]+=\S*\s+)*(?:python3?|make|curl|\.venv/bin/\S+|celery|gunicorn|export|pip|pytest)\b", re.MULTILINE
)
DOCUMENTED_WEB_PORT = "8000"
DOCUMENTED_DYNAMODB_PORT = "8001"
BLOCK_SECONDS = 300  # a hang guard: the slowest block (the migration quick start) takes ~30 s on an idle machine
START_SECONDS = 180


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_blocks() -> list[Block]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.search(before)
            language = match.group(1).strip().split()[0] if match.group(1).strip() else ""
            blocks.append(Block(path, line, language, match.group(2), skip.group("reason") if skip else None))
    return blocks


BLOCKS = doc_blocks()
RUNNABLE = [block for block in BLOCKS if block.language in RUN_LANGUAGES]


def test_every_command_block_is_tagged_so_it_runs():
    untagged = [block.id for block in BLOCKS if not block.language and LOOKS_LIKE_A_COMMAND.search(block.text)]
    assert not untagged, f"command blocks without a language (tag them sh, or mark them skipped): {untagged}"
    marked_elsewhere = [block.id for block in BLOCKS if block.skip_reason and block.language not in RUN_LANGUAGES]
    assert not marked_elsewhere, f"a skip mark on a block that would not run anyway: {marked_elsewhere}"


SUITE_COMMAND = re.compile(r"^\s*(?:make test\b|(?:\S*/)?python3? -m pytest\b|pytest\b)", re.MULTILINE)


def test_no_runnable_block_runs_the_suite_itself():
    # a block running `make test` or the suite's own tests would run them again inside the docs test (minutes,
    # recursive for make test): such a block is marked skipped, since make test runs those tests anyway
    recursive = [b.id for b in RUNNABLE if not b.skip_reason and SUITE_COMMAND.search(b.text)]
    assert not recursive, f"runnable blocks that run make test or pytest: {recursive}"


MAX_SKIPPED = 8  # servers that never exit, benchmarks, two of the suite's own test runs, a Redis runbook: no more


def test_skips_are_few():
    skipped = [block.id for block in RUNNABLE if block.skip_reason]
    assert len(skipped) <= MAX_SKIPPED, skipped


# --- make run's stack ----------------------------------------------------------------------------------------


class Devstack:
    def __init__(self, base: Path) -> None:
        self.var = base / "var"
        self.checkout = base / "checkout"
        self.web_port = free_port()
        self.dynamodb_port = free_port()
        self.lines: list[str] = []
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LIZZY_", "DJANGO_", "AWS_", "CELERY_", "PYTEST", "BENCH_"))
            and key not in ("REDIS_URL", "DATABASE_URL", "PORT", "TWILIO_AUTH_TOKEN")
        }
        self.env |= {
            "DJANGO_SETTINGS_MODULE": "lizzy.settings.local",
            "LIZZY_VAR_DIR": str(self.var),
            "PORT": str(self.web_port),
            "LIZZY_LOCAL_DYNAMODB_PORT": str(self.dynamodb_port),
            "LIZZY_LOG_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto's
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.var.mkdir(parents=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lizzy.devstack"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + START_SECONDS
        while not any(line.strip().startswith("Logs ") for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("make run did not print its block:\n" + "".join(self.lines))
            time.sleep(0.2)

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return -9
        return self.process.returncode

    def user_checkout(self, shims: Path) -> tuple[Path, dict[str, str]]:
        """A checkout whose var/ is this stack's, and the environment of a second terminal in it."""
        self.checkout.mkdir()
        for entry in ROOT.iterdir():
            if entry.name not in ("var", ".git"):
                (self.checkout / entry.name).symlink_to(entry)
        (self.checkout / "var").symlink_to(self.var)
        env = dict(self.env)
        env["PATH"] = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
        for name in ("PORT", "DJANGO_SETTINGS_MODULE", "LIZZY_LOG_LEVEL"):  # manage.py's defaults, as for a user
            env.pop(name)
        return self.checkout, env


@pytest.fixture(scope="module")
def devstack(tmp_path_factory):
    stack = Devstack(tmp_path_factory.mktemp("make-run"))
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def terminal(devstack, tmp_path_factory):
    """(cwd, env) of a second terminal; ``curl`` there fails on HTTP errors."""
    shims = tmp_path_factory.mktemp("shims")
    real_curl = shutil.which("curl")
    if real_curl:
        (shims / "curl").write_text(f'#!/bin/sh\nexec {real_curl} --silent --show-error --fail-with-body "$@"\n')
        (shims / "curl").chmod(0o755)
    return devstack.user_checkout(shims)


def test_make_run_prints_one_block_saying_what_runs_where_and_how_to_sign_in(devstack):
    output = "".join(devstack.lines)
    base = f"http://127.0.0.1:{devstack.web_port}"

    assert f"Ops console  {base}/admin/" in output
    assert f"REST API     {base}/api/v1/" in output
    assert f"DynamoDB     http://127.0.0.1:{devstack.dynamodb_port}" in output
    # without Redis the shared counters are in the database, not in one process's memory
    assert re.search(
        r"Cache        (Redis at |no Redis: per-process memory; counters every process shares in the database)", output
    )
    password = re.search(r"user admin, password (\S+)  \(reset: python manage\.py changepassword admin\)", output)
    assert password, output
    assert (devstack.var / "admin-password").read_text().strip() == password.group(1)
    # the startup was calm: the block, and nothing that looks like a problem
    assert not re.search(r"WARNING|ERROR|Traceback|superuser privileges|HTTP/1\.1\" 400", output), output


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
def test_doc_block_runs(block, devstack, terminal):
    if block.skip_reason:
        pytest.skip(f"docs block marked not to run: {block.skip_reason}")
    if "curl " in block.text and not shutil.which("curl"):
        pytest.skip("curl is not installed")
    cwd, env = terminal
    script = block.text.replace(f"127.0.0.1:{DOCUMENTED_WEB_PORT}", f"127.0.0.1:{devstack.web_port}")
    script = script.replace(f"127.0.0.1:{DOCUMENTED_DYNAMODB_PORT}", f"127.0.0.1:{devstack.dynamodb_port}")
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
        check=False,
    )
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"{block.id} failed ({done.returncode}):\n{script}\n{output}"


def test_ctrl_c_stops_everything_quietly(devstack):
    # last in this module: the docs blocks above ran against the stack
    started = len(devstack.lines)
    assert devstack.stop() == 0
    after = "".join(devstack.lines[started:])

    assert "Stopped." in after
    assert not re.search(r"ERROR|Traceback|exited with|signal 15|did not stop", after), after
