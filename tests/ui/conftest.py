"""Browser fixtures: one headless Chromium per test module, reset before every test."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator

import pytest

from tests.ui.browser import Browser


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the `browser` fixture knows whether its test failed."""
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser_session() -> Iterator[Browser]:
    """The module's Chromium; skipped (failed in CI) when Chromium, chromedriver or selenium is missing."""
    browser = Browser.launch()
    yield browser
    browser.close()


@pytest.fixture
def browser(browser_session: Browser, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The module's Chromium with a blank page, no cookies and empty logs; screenshots the page if the test fails."""
    browser_session.reset()
    yield browser_session
    report = getattr(request.node, "_report_call", None)
    if report is not None and report.failed:
        # Best effort: a browser that died with the test must not add a teardown error to its failure.
        with contextlib.suppress(Exception):
            browser_session.screenshot(f"FAILED-{request.node.nodeid}")
