"""The browser harness itself, against a tiny HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import browser as harness
from tests.support.browser import Browser

# Each page brings its own (empty) icon, so Chromium does not ask for /favicon.ico.
HEAD = '<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>harness</title></head>'
PAGES = {
    "/boom.html": f'<!doctype html><html>{HEAD}<body><script>console.error("boom")</script></body></html>',
    "/clean.html": f"<!doctype html><html>{HEAD}<body><h1>clean</h1><p>nothing to see</p></body></html>",
    "/external.html": (
        f'<!doctype html><html>{HEAD}<body><img src="http://example.invalid/x.png" alt="x"></body></html>'
    ),
}


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Base URL of a page server on 127.0.0.1 (random port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_console_error_is_reported(browser: Browser, site: str) -> None:
    browser.get(f"{site}/boom.html")
    errors = browser.console_errors()
    assert any('"boom"' in message for message in errors), errors


def test_clean_page_is_local_and_screenshots(
    browser: Browser, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser.get(f"{site}/clean.html")
    assert browser.console_errors() == []
    assert browser.requested_urls() == [f"{site}/clean.html"]
    browser.assert_local()
    assert browser.driver.get_window_size() == {"width": 1280, "height": 900}

    monkeypatch.delenv("TICKETD_ARTIFACTS", raising=False)
    path = browser.screenshot("harness-clean")
    assert path == harness.ROOT / "test-artifacts" / "screenshots" / "harness-clean.png"
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE

    monkeypatch.setenv("TICKETD_ARTIFACTS", str(tmp_path / "artifacts"))
    path = browser.screenshot("clean/page")
    assert path == tmp_path / "artifacts" / "clean_page.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_external_request_fails_assert_local(browser: Browser, site: str) -> None:
    browser.get(f"{site}/external.html")
    urls = browser.requested_urls()
    assert "http://example.invalid/x.png" in urls, urls
    with pytest.raises(AssertionError, match=r"example\.invalid/x\.png") as raised:
        browser.assert_local()
    assert f"{site}/external.html" not in str(raised.value)


def test_each_test_starts_clean(browser: Browser, site: str) -> None:
    """The module's browser is shared, but logs and cookies from earlier tests are gone."""
    assert browser.console_errors() == []
    assert browser.requested_urls() == []
    browser.get(f"{site}/clean.html")
    browser.driver.add_cookie({"name": "session", "value": "1"})
    assert browser.driver.get_cookie("session") is not None
    browser.reset()
    browser.get(f"{site}/clean.html")
    assert browser.driver.get_cookie("session") is None


@pytest.mark.parametrize("missing", ["chromium", "chromium-driver"])
def test_missing_binary_skips_but_fails_in_ci(missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No browser needed: the skip/fail rule when Chromium or chromedriver is not installed."""
    if missing == "chromium":
        monkeypatch.setattr(harness, "CHROMIUM_CANDIDATES", (tmp_path / "chromium",))
    else:
        monkeypatch.setattr(harness, "CHROMEDRIVER", tmp_path / "chromedriver")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{missing} \\(") as skipped:
        Browser.launch()
    assert "\n" not in str(skipped.value)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{missing} \\("):
        Browser.launch()
