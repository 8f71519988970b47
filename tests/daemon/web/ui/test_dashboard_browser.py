"""The dashboard in a real browser: Debian's headless Chromium against `ticketd run` (a separate process) polling
the fake Znuny on a real port with the session's tiny model.

Every page renders its tables and charts with no console error, the browser's network log shows nothing but
127.0.0.1, login and logout work, a read-only token cannot promote even with a hand-made form, and an admin
promotes and rolls back through the confirmation page. Each page's screenshot is saved as a test artifact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.support.browser import Browser
from tests.support.daemon import PASSWORD, TARGETS, daemon, write_config
from tests.support.fakes.http import serve
from tests.support.fakes.znuny import FakeZnuny
from tests.support.servers import free_port, stop
from tests.support.web import linked_store
from tests.support.world import ADMIN, READER

pytestmark = pytest.mark.slow
TICKETS = [
    ("Invoice charged twice", "We were billed twice for March, please refund the invoice."),
    ("VPN keeps dropping", "The VPN disconnects every few minutes since the update."),
    ("Need a quote", "Please send an offer for 30 more licences."),
    ("Laptop screen broken", "My screen flickers and then goes black."),
    ("Payment failed", "The card payment failed although the card is valid."),
    ("Password reset", "I cannot reset my password, the link expired."),
    ("Refund request", "Please refund the second invoice."),
    ("Server down", "Our server is down since this morning, urgent."),
]
PAGES = {  # page -> (charts it draws, a table or text it must show)
    "overview": (0, "#connectors"),
    "quality": (4, "table.classes"),
    "decisions": (0, "#decisions"),
    "models": (0, "#versions"),
    "advisor": (2, "table.advisor"),
}


@dataclass
class Live:
    url: str
    znuny: FakeZnuny
    ids: list[int]
    log: Path


def _config(tmp_path: Path, znuny_url: str, store: Path, port: int) -> Path:
    """test_run's daemon config (every queue routed at threshold 0), with the API, the dashboard's two roles,
    a priority target the tiny model cannot reach (so its classes are left) and a fast harvest."""
    path = write_config(tmp_path, znuny_url, store, harvest_interval=0.5)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["api"] = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [ADMIN], "read_tokens": [READER]}
    priority = config["connectors"][0]["routing"]["labels"]["priority"]
    del priority["threshold"]
    priority["target_precision"] = 0.9
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _wait(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _quality_compares(url: str) -> bool:
    with httpx.Client(base_url=url, timeout=5) as client:
        client.post("/ui/login", data={"token": READER, "next": "/ui/quality"})
        return "closed tickets compared" in client.get("/ui/quality").text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Live]:
    tmp_path = tmp_path_factory.mktemp("dashboard")
    store = linked_store(tmp_path / "models", tiny_model, 2)
    znuny = FakeZnuny(passwords={"agent1": PASSWORD})
    znuny.agent_update(3, queue="Misc")  # the installation's own new ticket: not part of this test
    ids = [znuny.add_customer_ticket(subject, body, queue="Raw") for subject, body in TICKETS]
    with serve(znuny) as znuny_url:
        port = free_port()
        config = _config(tmp_path, znuny_url, store, port)
        log = tmp_path / "daemon.log"
        proc = daemon(config, log=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait("every ticket routed", lambda: all(znuny.writes(t) for t in ids))
            for i, tid in enumerate(ids[:6]):  # the agents close six; two of them elsewhere than ticketd put them
                queue = TARGETS[(i + 1) % 4] if i in (1, 4) else znuny.queue_name(tid)
                znuny.agent_update(tid, queue=queue, state="closed successful")
            _wait("closed tickets on the quality page", lambda: _quality_compares(url))
            yield Live(url, znuny, ids, log)
        finally:
            stop(proc)


def _login(browser: Browser, live: Live, token: str, then: str = "/ui/overview") -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live.url}{then}")
    assert "/ui/login" in browser.driver.current_url  # no session: every page leads to the login
    browser.driver.find_element(By.ID, "token").send_keys(token)
    browser.driver.find_element(By.ID, "login").click()
    # the path itself: the login page's own URL names the page to go on to (?next=...)
    _wait("the page after login", lambda: urlsplit(browser.driver.current_url).path == then, 15)


def _served(live: Live) -> str:
    answer = httpx.get(f"{live.url}/api/v1/model", headers={"Authorization": f"Bearer {READER}"}, timeout=5)
    return str(answer.json()["served_version"])


def test_every_page_renders_offline_with_its_charts_for_a_read_only_token(browser: Browser, live: Live) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live.url}/ui/login")
    browser.screenshot("dashboard-login")
    _login(browser, live, READER)
    cookie = browser.driver.get_cookie("ticketd_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert READER not in cookie["value"]  # the cookie names the token by a fingerprint only
    for page, (charts, selector) in PAGES.items():
        browser.get(f"{live.url}/ui/{page}")
        assert browser.driver.find_elements(By.CSS_SELECTOR, selector), f"{page}: no {selector}"

        def enough(charts: int = charts) -> bool:
            return len(browser.driver.find_elements(By.CSS_SELECTOR, "[data-drawn=true] canvas")) >= charts

        assert _wait(f"{page}'s charts", enough, 10), page
        assert len(browser.driver.find_elements(By.CSS_SELECTOR, "[data-chart]")) >= charts
        browser.screenshot(f"dashboard-{page}", full_page=True)
        assert browser.console_errors() == [], page
    browser.get(f"{live.url}/ui/advisor?target=0.5")  # a target the tiny model's classes can reach
    assert "Threshold advisor" in browser.driver.find_element(By.TAG_NAME, "body").text
    browser.screenshot("dashboard-advisor-target-0.5", full_page=True)
    browser.get(f"{live.url}/ui/decisions")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
    assert len(rows) == 2 * len(live.ids)  # queue and priority of every ticket
    browser.get(f"{live.url}/ui/decisions?label=queue")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")) == len(live.ids)
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "tr.corrected")) == 2  # the two the agents moved
    links = [a.get_attribute("href") for a in browser.driver.find_elements(By.CSS_SELECTOR, "#decisions a")]
    assert any("AgentTicketZoom" in (href or "") for href in links)
    browser.get(f"{live.url}/ui/models")
    assert "No retrain has run yet." in browser.driver.find_element(By.TAG_NAME, "body").text  # not `serve`'s
    browser.get(f"{live.url}/ui/overview")
    assert "fake" in browser.driver.find_element(By.ID, "connectors").text
    urls = browser.requested_urls()
    assert any(u.endswith("/ui/static/vendor/uplot/uPlot.iife.min.js") for u in urls)
    browser.assert_local()  # nothing any page asked for left 127.0.0.1


def test_a_read_only_token_cannot_promote_even_with_a_hand_made_form(browser: Browser, live: Live) -> None:
    from selenium.webdriver.common.by import By

    _login(browser, live, READER, "/ui/models")
    assert not browser.driver.find_elements(By.CSS_SELECTOR, "a.promote")  # no promote button offered
    browser.get(f"{live.url}/ui/models/v1/promote")
    assert "admin token" in browser.driver.find_element(By.ID, "message").text
    browser.get(f"{live.url}/ui/models")  # a page without a message, so the refusal below is the POST's answer
    csrf = browser.driver.find_element(By.CSS_SELECTOR, "form.inline input[name=csrf]").get_attribute("value")
    browser.driver.execute_script(  # the session's own CSRF value: only the role is wrong
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "const i = document.createElement('input'); i.name = 'csrf'; i.value = arguments[1];"
        "f.appendChild(i); document.body.appendChild(f); f.submit();",
        "/ui/models/v1/promote",
        csrf,
    )
    _wait("the refusal", lambda: browser.driver.find_elements(By.ID, "message"), 10)
    assert "admin token" in browser.driver.find_element(By.ID, "message").text
    assert _served(live) == "v2"
    browser.screenshot("dashboard-read-only-refused")


def test_login_logout_and_a_wrong_token(browser: Browser, live: Live) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live.url}/ui/login")
    browser.driver.find_element(By.ID, "token").send_keys("not-a-token")
    browser.driver.find_element(By.ID, "login").click()
    (refusal,) = _wait("the refusal", lambda: browser.driver.find_elements(By.ID, "login-error"), 10)
    assert "not valid" in refusal.text
    assert browser.driver.get_cookie("ticketd_session") is None
    _login(browser, live, READER)
    browser.driver.find_element(By.ID, "logout").click()
    _wait("the login page", lambda: urlsplit(browser.driver.current_url).path == "/ui/login", 10)
    assert browser.driver.get_cookie("ticketd_session") is None
    browser.get(f"{live.url}/ui/models")
    assert "/ui/login" in browser.driver.current_url  # logged out: the pages lead to the login again
    (refused,) = browser.console_errors()  # the only one: the wrong token's answer is a 401
    assert "/ui/login" in refused and "401" in refused
    browser.assert_local()


def test_a_session_cookie_saved_before_logout_is_refused_after_it(browser: Browser, live: Live) -> None:
    """Logout ends the session on the server: a copy of the cookie taken before it opens no page and promotes
    nothing afterwards, even with the session's own CSRF value."""
    from selenium.webdriver.common.by import By

    _login(browser, live, ADMIN, "/ui/models")
    csrf = browser.driver.find_element(By.CSS_SELECTOR, "form.inline input[name=csrf]").get_attribute("value")
    assert csrf
    # The HttpOnly cookie as the browser holds it (no script can read it): through the DevTools protocol.
    cookies = browser.driver.execute_cdp_cmd("Network.getCookies", {"urls": [f"{live.url}/ui/models"]})["cookies"]
    (saved,) = [c["value"] for c in cookies if c["name"] == "ticketd_session"]
    replay = {"Cookie": f"ticketd_session={saved}", "Origin": live.url}
    with httpx.Client(base_url=live.url, timeout=10, follow_redirects=False) as client:
        assert client.get("/ui/models", headers=replay).status_code == 200  # the copy works while the session lasts
        browser.driver.find_element(By.ID, "logout").click()
        _wait("the login page", lambda: urlsplit(browser.driver.current_url).path == "/ui/login", 10)
        assert browser.driver.get_cookie("ticketd_session") is None
        page = client.get("/ui/models", headers=replay)
        assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=/ui/models"
        for action in ("/ui/models/v1/promote", "/ui/models/rollback"):
            refused = client.post(action, data={"csrf": csrf}, headers=replay)
            assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login"), action
    assert _served(live) == "v2"
    assert browser.console_errors() == []
    browser.assert_local()


def test_an_admin_promotes_and_rolls_back_with_confirmation(browser: Browser, live: Live) -> None:
    from selenium.webdriver.common.by import By

    _login(browser, live, ADMIN, "/ui/models")
    browser.driver.find_element(By.ID, "promote-v1").click()
    _wait("the confirmation", lambda: browser.driver.find_elements(By.ID, "confirm"), 10)
    assert _served(live) == "v2"  # nothing happens before the confirmation
    browser.screenshot("dashboard-confirm")
    browser.driver.find_element(By.ID, "confirm").click()
    _wait("the promotion", lambda: browser.driver.find_elements(By.ID, "done"), 20)
    assert browser.driver.find_element(By.ID, "served").text == "v1" and _served(live) == "v1"
    browser.driver.find_element(By.ID, "rollback").click()
    _wait("the confirmation", lambda: browser.driver.find_elements(By.ID, "confirm"), 10)
    browser.driver.find_element(By.ID, "confirm").click()
    _wait("the rollback", lambda: browser.driver.find_elements(By.ID, "done"), 20)
    assert browser.driver.find_element(By.ID, "served").text == "v2" and _served(live) == "v2"
    assert browser.console_errors() == []
    browser.assert_local()


def test_make_run_prints_the_dashboard_url_and_a_token_that_logs_in(tmp_path: Path, tiny_model: Path) -> None:
    """`ticketd run` on the embedded defaults (what `make run` starts): the URL and this run's admin token."""
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.skip("port 8080, the embedded defaults' API port, is taken on this machine")
    linked_store(tmp_path / "models", tiny_model, 1)
    log = tmp_path / "run.log"
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        line = _wait(
            "the dashboard line",
            lambda: next((x for x in log.read_text().splitlines() if x.startswith("ticketd dashboard: ")), None),
        )
        url, _, token = line.removeprefix("ticketd dashboard: ").partition("; log in with this run's admin token ")
        assert url == "http://127.0.0.1:8080/ui" and len(token) >= 20
        with httpx.Client(timeout=5) as client:
            assert client.post(f"{url}/login", data={"token": "wrong"}).status_code == 401
            page = client.post(f"{url}/login", data={"token": token, "next": "/ui/models"}, follow_redirects=True)
            assert page.status_code == 200 and "Promote" not in page.text and "Roll back" in page.text
        assert token not in "".join(x for x in log.read_text().splitlines() if x.startswith("{"))  # not in the log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
