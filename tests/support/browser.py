"""Headless Chromium for browser tests, driven by Selenium through Debian's matching chromedriver.

``find_chromium`` finds the browser and its driver; ``require_chromium`` skips the test saying what is
missing (with ``REQUIRE_BROWSER=1``, as CI sets it, it fails instead); ``launch`` starts a fresh headless
browser and yields a ``Browser`` whose ``problems`` lists console errors, requests to anything but the
opened page, and failed loads since the last ``open``. Firefox is not supported: Debian ships no geckodriver.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = [
    "CHROMIUM_FLAGS",
    "REQUIRE_ENV",
    "WAIT_SECONDS",
    "Browser",
    "Chromium",
    "find_chromium",
    "launch",
    "require_chromium",
]

REQUIRE_ENV = "REQUIRE_BROWSER"
# How long a test waits for the page to reach a state (``WebDriverWait``). The wait ends as soon as the state is
# reached, so only a page that never reaches it spends this: it is far beyond what a loaded CI machine takes to
# filter or draw, because how fast the page does it is measured in a benchmark, never in a test.
WAIT_SECONDS = 30
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Requests the browser makes for itself (its new-tab page, internal resources), not the page under test.
# (Loads that fail without a request seen since ``open`` were started before it: the start page's.)
_BROWSER_OWN = ("chrome:", "chrome-untrusted:", "devtools:", "about:", "data:")


@dataclass(frozen=True)
class Chromium:
    """Where the browser and its driver are installed."""

    browser: str
    driver: str


def find_chromium() -> Chromium | str:
    """The installation, or what is missing."""
    if importlib.util.find_spec("selenium") is None:
        return "the Python package selenium is not installed (pip install selenium)"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next(
        (path for path in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(path).exists()), None
    )
    if browser is None or driver is None:
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return Chromium(browser, driver)


def require_chromium() -> Chromium:
    """Chromium and its driver; skips the test when either is missing, fails instead with REQUIRE_BROWSER=1."""
    found = find_chromium()
    if isinstance(found, Chromium):
        return found
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {found}", pytrace=False)
    pytest.skip(f"no browser: {found}")


class Browser:
    """A headless browser page and what went wrong on it."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self._url = ""
        self._requests: dict[str, str] = {}

    def open(self, path: Path) -> None:
        """Load a file (forgetting earlier logs) and wait for its load event."""
        self._log("browser")
        self._log("performance")
        self._url = path.resolve().as_uri()
        self._requests = {}
        self.driver.get(self._url)

    def problems(self) -> list[str]:
        """Console errors, requests for anything but the opened page, and failed loads since ``open``."""
        found = [f"console: {entry['message']}" for entry in self._log("browser") if entry["level"] == "SEVERE"]
        for entry in self._log("performance"):
            message = json.loads(entry["message"])["message"]
            params: dict[str, Any] = message["params"]
            if message["method"] == "Network.requestWillBeSent":
                url = self._requests[params["requestId"]] = params["request"]["url"]
                if url != self._url and not url.startswith(_BROWSER_OWN):
                    found.append(f"request: {url}")
            elif message["method"] == "Network.loadingFailed" and params["requestId"] in self._requests:
                url = self._requests[params["requestId"]]
                if not url.startswith(_BROWSER_OWN):
                    found.append(f"failed load: {url} {params.get('errorText')}")
        return found

    def _log(self, kind: str) -> list[dict[str, Any]]:
        """The entries of a log since it was last read (reading empties it)."""
        entries: list[dict[str, Any]] = self.driver.get_log(kind)  # type: ignore[no-untyped-call]  # untyped in selenium
        return entries

    def run(self, script: str, *args: Any) -> Any:
        """The value of a JavaScript function body run in the page."""
        return self.driver.execute_script(script, *args)


@contextmanager
def launch(chromium: Chromium | None = None, *, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A fresh headless Chromium (own profile directory), closed afterwards; found with ``require_chromium`` if None."""
    chromium = chromium or require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium.browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(chromium.driver))
        try:
            yield Browser(driver)
        finally:
            driver.quit()
