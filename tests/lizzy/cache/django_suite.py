"""Django's own cache tests (``tests/cache/`` of Django's source distribution), fetched for the suite.

The wheel does not ship Django's tests, so ``make django-tests`` (a prerequisite of ``make test``) runs
``python -m tests.lizzy.cache.django_suite``: the sdist of the *installed* Django version is found on the
package index's simple page (``PIP_INDEX_URL``, else PyPI) and read into memory, its SHA-256 is checked
against the pin below before anything else touches it (no build step runs: ``pip download`` of an sdist
would run its build backend to read its metadata before any check of ours), and only ``tests/cache/*.py``
and Django's LICENSE are extracted into
``var/django-tests/<version>/``. The test settings put that folder on ``sys.path`` and install its
``cache`` app (Django's test models, for the model-instance tests). Why not vendor: the tests run are
byte-for-byte the ones Django ships for the version we pin, with nothing of ours to drift; a Django
upgrade needs one new hash here, and the suite follows.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import django

ROOT = Path(__file__).resolve().parents[3]
# the same folder as the settings' VAR_DIR (lizzy/settings/base.py), so LIZZY_VAR_DIR moves both
SUITE_ROOT = Path(os.environ.get("LIZZY_VAR_DIR", str(ROOT / "var"))).resolve() / "django-tests"
# sha256 of Django's sdist on PyPI, per version: checked before the archive is opened.
SDIST_SHA256 = {"5.2.19": "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"}
FILES = ("__init__.py", "models.py", "tests.py", "closeable_cache.py", "failing_cache.py", "liberal_backend.py")

ERR_NO_PIN = "No SHA-256 pinned for Django {version}'s sdist in tests/lizzy/cache/django_suite.py (SDIST_SHA256)."
ERR_HASH = "Django {version}'s sdist has SHA-256 {actual}, not the pinned {expected}; nothing was extracted."
ERR_NOT_ON_INDEX = "Django {version}'s sdist ({name}) is not on {index}."
DEFAULT_INDEX = "https://pypi.org/simple/"
DOWNLOAD_TIMEOUT = 120
ERR_MISSING = (
    "Django's cache tests are not in {path}: run `make django-tests` (`make test` runs it), "
    "or `.venv/bin/python -m tests.lizzy.cache.django_suite`."
)


def suite_dir(version: str = django.__version__) -> Path:
    return SUITE_ROOT / version


def fetched(version: str = django.__version__) -> bool:
    return all((suite_dir(version) / "cache" / name).is_file() for name in FILES)


class _Links(HTMLParser):
    """The ``href`` of every anchor of a PEP 503 simple page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def sdist_url(version: str, index: str | None = None) -> str:
    index = (index or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/") + "/"
    page = urljoin(index, "django/")
    listing = page + "index.html" if page.startswith("file:") else page  # a local index is a folder, as for pip
    with urllib.request.urlopen(listing, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 - the index URL
        parser = _Links()
        parser.feed(response.read().decode("utf-8", errors="replace"))
    name = f"django-{version}.tar.gz"
    for href in parser.hrefs:
        if Path(urlsplit(href).path).name.lower() == name:
            return urljoin(page, href).split("#", 1)[0]
    raise SystemExit(ERR_NOT_ON_INDEX.format(version=version, name=name, index=index))


def verified_sdist(version: str, data: bytes) -> bytes:
    """``data`` when its SHA-256 is the pinned one; nothing is opened before this check."""
    expected = SDIST_SHA256.get(version)
    if expected is None:
        raise SystemExit(ERR_NO_PIN.format(version=version))
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise SystemExit(ERR_HASH.format(version=version, actual=actual, expected=expected))
    return data


def extract(version: str, data: bytes) -> Path:
    target = suite_dir(version)
    base = f"django-{version}"
    (target / "cache").mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        wanted = {f"{base}/tests/cache/{name}": target / "cache" / name for name in FILES}
        wanted[f"{base}/LICENSE"] = target / "LICENSE"
        for member in archive.getmembers():
            if member.name in wanted and member.isfile():
                wanted[member.name].write_bytes(archive.extractfile(member).read())
    return target


def fetch(version: str = django.__version__) -> Path:
    if fetched(version):
        return suite_dir(version)
    if version not in SDIST_SHA256:
        raise SystemExit(ERR_NO_PIN.format(version=version))
    with urllib.request.urlopen(sdist_url(version), timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310
        data = verified_sdist(version, response.read())
    target = extract(version, data)
    if not fetched(version):
        raise SystemExit(ERR_MISSING.format(path=target))
    return target


if __name__ == "__main__":
    print(f"Django's cache tests: {fetch()}")
