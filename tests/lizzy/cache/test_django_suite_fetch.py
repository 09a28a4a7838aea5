"""``make django-tests``: the sdist's SHA-256 is checked before anything opens, builds or extracts it."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from tests.lizzy.cache import django_suite

VERSION = "9.9.9"


def sdist_bytes(extra: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        names = [f"tests/cache/{name}" for name in django_suite.FILES] + ["LICENSE", "setup.py"]
        for name in names:
            body = b"# " + name.encode() + extra
            info = tarfile.TarInfo(f"django-{VERSION}/{name}")
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A file:// simple index holding Django-9.9.9.tar.gz, and the suite folder under tmp_path."""
    monkeypatch.setattr(django_suite, "SUITE_ROOT", tmp_path / "suite")
    (tmp_path / "simple" / "django").mkdir(parents=True)
    (tmp_path / "files").mkdir()

    def publish(data: bytes) -> str:
        (tmp_path / "files" / f"Django-{VERSION}.tar.gz").write_bytes(data)
        (tmp_path / "simple" / "django" / "index.html").write_text(
            f'<a href="../../files/Django-{VERSION}.tar.gz#sha256=whatever">Django-{VERSION}.tar.gz</a>'
            '<a href="../../files/Django-9.9.8.tar.gz">old</a>'
        )
        monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri())
        return hashlib.sha256(data).hexdigest()

    return publish


def test_the_pinned_sdist_is_found_checked_and_only_the_cache_tests_extracted(index, monkeypatch):
    digest = index(sdist_bytes())
    monkeypatch.setitem(django_suite.SDIST_SHA256, VERSION, digest)
    target = django_suite.fetch(VERSION)
    assert sorted(path.name for path in (target / "cache").iterdir()) == sorted(django_suite.FILES)
    assert (target / "LICENSE").is_file()
    assert not (target / "setup.py").exists()


def test_a_tampered_sdist_is_never_opened(index, monkeypatch):
    index(sdist_bytes(extra=b"\nimport os  # a build step that would run"))
    monkeypatch.setitem(django_suite.SDIST_SHA256, VERSION, hashlib.sha256(sdist_bytes()).hexdigest())
    opened = []
    monkeypatch.setattr(django_suite.tarfile, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(SystemExit, match="not the pinned"):
        django_suite.fetch(VERSION)
    assert opened == []
    assert not django_suite.suite_dir(VERSION).exists()


def test_a_version_without_a_pin_is_refused_before_any_download(monkeypatch, tmp_path):
    monkeypatch.setattr(django_suite, "SUITE_ROOT", tmp_path)
    monkeypatch.setattr(django_suite.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(SystemExit, match="No SHA-256 pinned"):
        django_suite.fetch("0.0.1")


def test_nothing_runs_pip(monkeypatch, index):
    digest = index(sdist_bytes())
    monkeypatch.setitem(django_suite.SDIST_SHA256, VERSION, digest)
    assert "subprocess" not in vars(django_suite)
    django_suite.fetch(VERSION)
