"""Django's own cache tests (``tests/cache/`` of Django's source distribution), fetched for the suite.

The wheel does not ship Django's tests, so ``make django-tests`` (a prerequisite of ``make test``) runs
``python -m tests.lizzy.cache.django_suite``: pip downloads the sdist of the *installed* Django version
(through pip's cache and index, like every other dependency), its SHA-256 is checked against the pin
below, and only ``tests/cache/*.py`` and Django's LICENSE are extracted into
``var/django-tests/<version>/``. The test settings put that folder on ``sys.path`` and install its
``cache`` app (Django's test models, for the model-instance tests). Why not vendor: the tests run are
byte-for-byte the ones Django ships for the version we pin, with nothing of ours to drift; a Django
upgrade needs one new hash here, and the suite follows.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[3]
# the same folder as the settings' VAR_DIR (lizzy/settings/base.py), so LIZZY_VAR_DIR moves both
SUITE_ROOT = Path(os.environ.get("LIZZY_VAR_DIR", str(ROOT / "var"))).resolve() / "django-tests"
# sha256 of Django's sdist on PyPI, per version (pip also checks the index's own hash on download).
SDIST_SHA256 = {"5.2.19": "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"}
FILES = ("__init__.py", "models.py", "tests.py", "closeable_cache.py", "failing_cache.py", "liberal_backend.py")

ERR_NO_PIN = "No SHA-256 pinned for Django {version}'s sdist in tests/lizzy/cache/django_suite.py (SDIST_SHA256)."
ERR_HASH = "Django {version}'s sdist has SHA-256 {actual}, not the pinned {expected}; nothing was extracted."
ERR_MISSING = (
    "Django's cache tests are not in {path}: run `make django-tests` (`make test` runs it), "
    "or `.venv/bin/python -m tests.lizzy.cache.django_suite`."
)


def suite_dir(version: str = django.__version__) -> Path:
    return SUITE_ROOT / version


def fetched(version: str = django.__version__) -> bool:
    return all((suite_dir(version) / "cache" / name).is_file() for name in FILES)


def fetch(version: str = django.__version__) -> Path:
    target = suite_dir(version)
    if fetched(version):
        return target
    expected = SDIST_SHA256.get(version)
    if expected is None:
        raise SystemExit(ERR_NO_PIN.format(version=version))
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(  # noqa: S603 - fixed arguments, this interpreter's pip
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
            + ["--no-binary", ":all:", f"Django=={version}", "--dest", download],
            check=True,
        )
        (sdist,) = Path(download).glob("*.tar.gz")
        actual = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if actual != expected:
            raise SystemExit(ERR_HASH.format(version=version, actual=actual, expected=expected))
        base = sdist.name.removesuffix(".tar.gz")
        (target / "cache").mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as archive:
            wanted = {f"{base}/tests/cache/{name}": target / "cache" / name for name in FILES}
            wanted[f"{base}/LICENSE"] = target / "LICENSE"
            for member in archive.getmembers():
                if member.name in wanted and member.isfile():
                    wanted[member.name].write_bytes(archive.extractfile(member).read())
    if not fetched(version):
        raise SystemExit(ERR_MISSING.format(path=target))
    return target


if __name__ == "__main__":
    print(f"Django's cache tests: {fetch()}")
