"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driving the admin on a live server.

``make test`` installs the browser when it is missing and the user is root (``.ci/install-browser``).
Without it these tests skip, or fail under LIZZY_REQUIRE_SERVICES=1. A failing test leaves a
screenshot in ``test-artifacts/``. With ``LIZZY_SCREENSHOTS=1`` (``make screenshots``) the tests also save the
console's main pages into ``docs/img/`` for docs/OPERATIONS.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("LIZZY_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LIZZY_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
# An upper bound only (each wait returns once its condition holds): 10 s timed out once under the suite's load.
WAIT_SECONDS = 30
SCREENSHOT_SIZE = (1280, 800)  # the admin's full width; a viewport, not the whole page: small PNGs


def screenshot(browser, name: str) -> Path | None:
    """Save the page as docs/img/<name>.png when LIZZY_SCREENSHOTS=1 (``make screenshots``); else nothing."""
    if os.environ.get("LIZZY_SCREENSHOTS") != "1":
        return None
    DOCS_IMAGES.mkdir(exist_ok=True)
    browser.set_window_size(*SCREENSHOT_SIZE)
    path = DOCS_IMAGES / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser_available() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"headless browser missing ({', '.join(missing)}); run .ci/install-browser as root"
        if os.environ.get("LIZZY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; LIZZY_REQUIRE_SERVICES=1 requires it.")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def _driver(browser_available, tmp_path_factory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_driver, request) -> Iterator[object]:
    """A signed-out browser; on failure the page is saved as a screenshot under test-artifacts/."""
    _driver.delete_all_cookies()
    yield _driver
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        _driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
