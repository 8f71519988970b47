"""The API docs pages in a real browser under their Content-Security-Policy: they still render, nothing is refused.

The policy allows each page's own inline script by its hash and nothing from elsewhere (daemon/web/edge.py); a
wrong hash or a missing source would leave /docs or /redoc blank with a console error, which this catches. ReDoc's
bundle asks cdn.redoc.ly for its logo: that request used to leave the site, and the policy now refuses it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import Browser
from tests.support.servers.ticketd import Served, serve_config, ticketd_serve

TOKEN = "docs-admin-token-0123456789-abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work: Path = tmp_path_factory.mktemp("docs")
    (work / "models").mkdir()  # no model: the docs need none
    with ticketd_serve(work, serve_config(work, {"tokens": [TOKEN]})) as served:
        yield served


def _rendered(browser: Browser, selector: str, timeout: float = 20.0) -> int:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = len(browser.driver.find_elements(By.CSS_SELECTOR, selector))
        if found:
            return found
        time.sleep(0.2)
    return 0


@pytest.mark.parametrize(
    ("page", "selector", "least"),
    [("/docs", ".opblock", 12), ("/redoc", "[data-section-id^='operation']", 12)],  # one per operation
)
def test_the_docs_render_their_operations_under_the_policy(
    browser: Browser, served: Served, page: str, selector: str, least: int
) -> None:
    browser.get(f"{served.url}{page}")
    assert _rendered(browser, selector) >= least, browser.driver.page_source[:2000]
    browser.screenshot(f"api{page.replace('/', '-')}")
    # ReDoc's bundle shows its logo from cdn.redoc.ly: the policy keeps that request in the browser, as it should.
    # Anything else refused (our own script or style) would be an error here.
    errors = browser.console_errors()
    refused = {m.group(1) for e in errors if (m := _REFUSED.search(e))}
    assert [e for e in errors if not _REFUSED.search(e)] == []
    assert not [url for url in refused if url.startswith(served.url)]  # nothing of ours is refused
    outside = [url for url in browser.requested_urls() if not url.startswith(served.url)]
    assert set(outside) <= refused  # whatever the page asked of another site, the policy stopped


_REFUSED = re.compile(r"Loading the \w+ '([^']+)' violates the following Content Security Policy")
