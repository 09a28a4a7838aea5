"""The suite's own guarantees: no cached value crosses from one test to the next; skips are counted by reason."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from django.core.cache import cache

from sessions_app.admin_panels import SESSIONS_BY_NODE_KEY

ROOT = Path(__file__).resolve().parents[2]


def small_run(directory: Path) -> subprocess.CompletedProcess:
    """pytest on ``directory`` with only the skip-summary plugin of this suite."""
    plugins = ["-p", "tests.fixtures.skip_summary", "-p", "no:cacheprovider"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # no django, hypothesis, schemathesis plugins
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-c", "/dev/null", "--rootdir", str(directory), str(directory)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_test_caches_the_dashboard_session_counts():
    # What a dashboard view leaves behind: zero sessions, cached for 30 s (the browser test's old failure).
    cache.set(SESSIONS_BY_NODE_KEY, {"counts": {}, "at": "2026-01-01T00:00:00+00:00"}, timeout=30)
    assert cache.get(SESSIONS_BY_NODE_KEY) is not None


def test_the_next_test_starts_with_an_empty_cache():
    # Runs after the test above (pytest keeps file order).
    assert cache.get(SESSIONS_BY_NODE_KEY) is None


def test_the_run_ends_with_skips_grouped_by_reason(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_runs():
                pass

            @pytest.mark.parametrize("n", range(3))
            def test_needs_a_server(n):
                pytest.skip("Server X is not available (unset)")

            @pytest.mark.skip(reason="not on this platform")
            def test_other():
                pass
            """
        )
    )
    done = small_run(tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(index for index, line in enumerate(lines) if "4 skipped, by reason" in line)
    assert lines[header + 1].split(None, 1) == ["3", "Server X is not available (unset)"]
    assert lines[header + 2].split(None, 1) == ["1", "not on this platform"]
    assert "1 passed, 4 skipped" in lines[-1]


def test_a_run_without_skips_says_so(tmp_path):
    (tmp_path / "test_sample.py").write_text("def test_runs():\n    pass\n")
    done = small_run(tmp_path)
    assert "Skipped: none." in done.stdout.splitlines()[-2]
