"""Headless Chromium for the dashboard's browser tests: a thin wrapper over a Selenium driver.

Chromium and chromedriver are Debian's (`make system-deps`); the driver is started from its explicit path, so
Selenium Manager never runs (and SE_OFFLINE keeps it offline if it ever did). Chromium is started with its
background services off and every host name but loopback resolving to nothing inside Chromium, so nothing it asks
for leaves the machine. `Browser.requested_urls()` lists what the pages asked for and `Browser.assert_local()`
fails when one of those went anywhere but 127.0.0.1. The logs are read when a helper is called: a request or
console error a page makes later (a timer, a fetch after load) shows once it has happened, so wait for it first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.support.paths import ROOT
from tests.support.servers import unavailable

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Debian's /usr/bin/chromium is a shell launcher that sources /etc/chromium.d (Google API keys, remote
# extensions, ...); the binary behind it is started directly when it is there.
CHROMIUM_CANDIDATES = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
WINDOW_SIZE = (1280, 900)
IGNORED_SCHEMES = frozenset({"data", "blob", "about"})
LOCAL_HOST = "127.0.0.1"

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    # One --disable-features only (chromedriver merges its own into it). NetworkTimeServiceQuerying: no
    # clients2.google.com/time at start.
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,"
    "NetworkTimeServiceQuerying",
    # The on-device model manifest is fetched from update.googleapis.com even with --disable-component-update;
    # an empty override manifest stops that fetch.
    "--optimization-guide-manifest-override=/dev/null",
    # Any host name other than loopback fails inside Chromium, before any DNS query (the request is still
    # attempted and logged). This is the guarantee: the sign-in service's accounts.google.com/ListAccounts at
    # start cannot be switched off by any flag and dies here.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)


def chromium_binary() -> Path | None:
    """The Chromium executable chromedriver should start, or None when Chromium is not installed."""
    return next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)


def missing_reason() -> str | None:
    """Why no headless Chromium can be started here (one line), or None when it can."""
    missing = []
    if chromium_binary() is None:
        missing.append("chromium (/usr/bin/chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"chromium-driver ({CHROMEDRIVER})")
    if missing:
        return f"no headless Chromium for the browser tests: {' and '.join(missing)} not installed (make system-deps)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no headless Chromium for the browser tests: selenium not installed (pip install -e '.[dev]')"
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: $TICKETD_ARTIFACTS when set, else <repo>/test-artifacts/screenshots/."""
    configured = os.environ.get("TICKETD_ARTIFACTS")
    return Path(configured) if configured else ROOT / "test-artifacts" / "screenshots"


def chromium_options() -> Any:
    """Selenium ChromeOptions for the offline headless Chromium (a selenium object; imported lazily)."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    binary = chromium_binary()
    if binary is not None:
        options.binary_location = str(binary)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_experimental_option("excludeSwitches", ["enable-automation"])
    options.add_experimental_option(
        "prefs", {"credentials_enable_service": False, "profile.password_manager_enabled": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return options


class Browser:
    """One headless Chromium. `driver` is the raw Selenium WebDriver for anything the helpers do not cover."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self._console: list[dict[str, Any]] = []
        self._requests: list[str] = []

    @classmethod
    def launch(cls) -> Browser:
        """Start Chromium, or skip the test (fail it in CI) when Chromium, chromedriver or selenium is missing."""
        reason = missing_reason()
        if reason:
            unavailable(reason)
        os.environ["SE_OFFLINE"] = "true"
        os.environ["SE_AVOID_STATS"] = "true"
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        try:
            driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=chromium_options())
        except WebDriverException as error:
            unavailable(f"headless Chromium did not start: {error.msg or error}".splitlines()[0])
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        return cls(driver)

    def close(self) -> None:
        self.driver.quit()

    def get(self, url: str) -> None:
        """Open a URL and wait for its load event."""
        self.driver.get(url)

    def reset(self) -> None:
        """A fresh start for the next test: a blank page, no cookies, and the logs so far forgotten."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.delete_all_cookies()
        self._drain()
        self._console.clear()
        self._requests.clear()

    def _drain(self) -> None:
        # Chromedriver hands each log entry out once: keep them, so every call sees all since the last reset.
        self._console.extend(self.driver.get_log("browser"))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"]).get("message", {})
            if message.get("method") == "Network.requestWillBeSent":
                url = message.get("params", {}).get("request", {}).get("url", "")
                if url and urlsplit(url).scheme not in IGNORED_SCHEMES:
                    self._requests.append(url)

    def console_errors(self) -> list[str]:
        """Messages of the browser log's SEVERE entries (console.error, failed loads, uncaught exceptions)."""
        self._drain()
        return [str(entry["message"]) for entry in self._console if entry.get("level") == "SEVERE"]

    def requested_urls(self) -> list[str]:
        """Every URL the pages asked for since the last reset, in order (data:, blob: and about: left out)."""
        self._drain()
        return list(self._requests)

    def assert_local(self) -> None:
        """Fail unless every requested URL went to 127.0.0.1."""
        offenders = [url for url in self.requested_urls() if urlsplit(url).hostname != LOCAL_HOST]
        assert not offenders, f"requests that left {LOCAL_HOST}: " + ", ".join(offenders)

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or, with `full_page`, the whole page) as <artifacts>/<name>.png."""
        directory = artifacts_dir()
        directory.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.removesuffix(".png")).strip("._") or "screenshot"
        path = directory / f"{stem}.png"
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight") or 0)
        if full_page and height > WINDOW_SIZE[1]:
            self.driver.set_window_size(WINDOW_SIZE[0], min(height + 100, 8000))
        try:
            if not self.driver.save_screenshot(str(path)):
                raise RuntimeError(f"Chromium could not save a screenshot to {path}")
        finally:
            if full_page and height > WINDOW_SIZE[1]:
                self.driver.set_window_size(*WINDOW_SIZE)
        return path
