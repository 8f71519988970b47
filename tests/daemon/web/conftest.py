"""Web fixtures: a model store whose versions link to the session's tiny model, app/client factories, and one
headless Chromium per test module for the browser tests (the docs pages here, the dashboard's in ui/)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.training.champion import RetrainPolicy
from daemon.web import Services
from tests.support.browser import Browser
from tests.support.web import FAST_POLICY, SUMMARY, TOKEN, client_of, linked_store


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, value in SUMMARY.items():
        terminalreporter.write_line(f"{name}: {json.dumps(value)}")


@pytest.fixture
def make_services(tmp_path: Path, tiny_model: Path) -> Callable[..., Services]:
    """Services over a fresh store (`versions` linked versions, 0 for none) with the given api settings."""

    made = 0

    def make(*, versions: int = 2, load: bool = True, policy: RetrainPolicy = FAST_POLICY, **api: Any) -> Services:
        nonlocal made
        made += 1
        base = tmp_path / f"services-{made}"
        api.setdefault("tokens", [SecretStr(TOKEN)])
        root = base / "models"
        if versions:
            linked_store(root, tiny_model, versions)
        holder = ModelHolder(root, threads=1)
        if load and versions:
            holder.load()
        return Services(
            api=ApiSection(**api),
            model=holder,
            datasets_dir=base / "datasets",
            workdir=base / "work",
            metrics=Metrics(),
            policy=policy,
        )

    return make


@pytest.fixture
def make_client(make_services: Callable[..., Services]) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over a fresh app; server errors come back as responses, as a real client would see them."""
    with contextlib.ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(client_of(make_services(**kwargs)))


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """Tokens configured, two versions stored (v2 current and loaded)."""
    return make_client()


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
