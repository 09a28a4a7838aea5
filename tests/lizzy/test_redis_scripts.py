"""Issue 11: lizzy/redis.py's Lua scripts are files next to it, read once, each stating the invariant it keeps."""

from __future__ import annotations

from pathlib import Path

import lizzy.redis

SCRIPTS = Path(lizzy.redis.__file__).with_name("redis_scripts")


def test_every_script_is_a_file_that_opens_with_its_invariant():
    files = sorted(path.stem for path in SCRIPTS.glob("*.lua"))
    assert files == sorted(lizzy.redis.SCRIPT_NAMES)
    for name in files:
        first = (SCRIPTS / f"{name}.lua").read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("-- Invariant: "), name


def test_no_lua_is_left_inside_the_module():
    source = Path(lizzy.redis.__file__).read_text(encoding="utf-8")
    assert "redis.call(" not in source


def test_scripts_are_read_once_at_import_not_per_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a script file was read after import")

    monkeypatch.setattr(Path, "read_text", refuse)
    assert "KEYS[1]" in lizzy.redis._CAS_SCRIPT  # already in memory
