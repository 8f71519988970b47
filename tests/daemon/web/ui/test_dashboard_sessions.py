"""Dashboard sessions end on the server: a cookie saved before logout opens nothing afterwards, sessions live in
the state database (so they survive a restart and every replica on it sees a logout), and a database that
cannot be read means no session, never an error page."""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from daemon.config import ApiSection
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.state import State
from daemon.training.champion import RetrainPolicy
from daemon.web import Services, create_app
from daemon.web.ui import pages as routes
from daemon.web.ui.session import COOKIE
from tests.support.servers.ticketd import serve_config, ticketd_serve
from tests.support.web import linked_store
from tests.support.world import ADMIN, READER, World, make_world

BASE = "http://127.0.0.1:8080"
PAGES = ("overview", "quality", "decisions", "models", "advisor", "models/v1/promote", "models/rollback")


@pytest.fixture
def world(tmp_path: Path, tiny_model: Path) -> Iterator[World]:
    world = make_world(tmp_path, tiny_model)
    yield world
    world.state.close()


def client(services: Services, cookie: str | None = None) -> TestClient:
    """A browser on `services`' app; with `cookie`, one replaying a saved session cookie."""
    c = TestClient(create_app(services), base_url=BASE, follow_redirects=False)
    if cookie is not None:
        c.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ui")
    return c


def logged_in(services: Services, token: str) -> tuple[TestClient, str, str]:
    """A logged-in browser, its session cookie and the CSRF value its forms carry."""
    c = client(services)
    answer = c.post("/ui/login", data={"token": token, "next": "/ui/overview"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/overview", answer.text
    found = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/overview").text)
    assert found is not None
    return c, c.cookies[COOKIE], found.group(1)


def replica(root: Path, state: State, api: ApiSection) -> Services:
    """Another process on the same model store and state database: a restarted `ticketd`, or a second replica."""
    return Services(
        api=api,
        model=ModelHolder(root, threads=1),
        datasets_dir=root / "datasets",
        workdir=root / "retrain",
        metrics=Metrics(),
        policy=RetrainPolicy(),
        state=state,
    )


def assert_no_session(c: TestClient, csrf: str) -> None:
    """Every page leads to the login, and promote and rollback are refused before anything is looked at."""
    for page in PAGES:
        answer = c.get(f"/ui/{page}")
        assert answer.status_code == 303 and answer.headers["location"] == f"/ui/login?next=/ui/{page}", page
    for action in ("/ui/models/v1/promote", "/ui/models/rollback"):
        answer = c.post(action, data={"csrf": csrf})  # the session's own CSRF value: only the session is gone
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login"), action


def test_a_cookie_saved_before_logout_opens_nothing_after_it(world: World) -> None:
    c, saved, csrf = logged_in(world.services, ADMIN)
    assert client(world.services, saved).get("/ui/models/v1/promote").status_code == 200  # a copy works before
    out = c.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert_no_session(client(world.services, saved), csrf)
    assert world.store.current() == "v2" and world.services.model.get().version == "v2"
    again, _, csrf_again = logged_in(world.services, ADMIN)  # logging in again is a new session that works
    assert again.post("/ui/models/rollback", data={"csrf": csrf_again}).status_code == 303
    assert world.store.current() == "v1"


def test_a_session_survives_a_restart(world: World, tmp_path: Path) -> None:
    _, saved, csrf = logged_in(world.services, ADMIN)
    world.state.close()  # the process ends; a new one opens the same state database
    with State.open(f"sqlite:///{tmp_path / 'state.db'}") as state:
        restarted = replica(tmp_path / "models", state, world.services.api)
        c = client(restarted, saved)
        confirm = c.get("/ui/models/v1/promote")
        assert confirm.status_code == 200 and f'value="{csrf}"' in confirm.text
        assert c.post("/ui/logout", data={"csrf": csrf}).status_code == 303
        assert_no_session(client(restarted, saved), csrf)
    assert world.store.current() == "v2"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_logout_through_one_replica_ends_the_session_on_the_other(
    backend: str, tmp_path: Path, tiny_model: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_server").new_database()
    root = linked_store(tmp_path / "models", tiny_model, 2)
    api = ApiSection(tokens=[SecretStr(ADMIN)], read_tokens=[SecretStr(READER)])
    with State.open(url) as state_a, State.open(url) as state_b:
        a, b = replica(root, state_a, api), replica(root, state_b, api)
        on_a, saved, csrf = logged_in(a, ADMIN)
        on_b = client(b, saved)
        assert on_b.get("/ui/models").status_code == 200  # the session is known to both
        out = on_b.post("/ui/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert_no_session(on_a, csrf)  # the browser that logged in on A, cookie still in hand
        assert a.store.current() == "v2" and b.store.current() == "v2"


def test_an_unreadable_state_database_is_no_session_with_one_log_line_per_request(world: World) -> None:
    c, _, csrf = logged_in(world.services, ADMIN)
    with world.state.write() as conn:  # the table cannot be read: as good as a database that is gone
        conn.execute(sa.text("ALTER TABLE ui_sessions RENAME TO ui_sessions_away"))
    with capture_logs() as logs:
        page = c.get("/ui/models")
        promote = c.post("/ui/models/v1/promote", data={"csrf": csrf})
    assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=/ui/models"
    assert promote.status_code == 303 and promote.headers["location"].startswith("/ui/login")
    assert world.store.current() == "v2"
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["dashboard_session_unverifiable"] * 2
    assert all("ui_sessions" in e["error"] and "exc_info" not in e for e in errors)
    login = client(world.services).post("/ui/login", data={"token": ADMIN})
    assert login.status_code == 503 and "could not be stored" in login.text and "set-cookie" not in login.headers
    with world.state.write() as conn:
        conn.execute(sa.text("ALTER TABLE ui_sessions_away RENAME TO ui_sessions"))
    assert c.get("/ui/models").status_code == 200  # it was the database: the session itself never ended


def test_sessions_are_checked_and_stored_off_the_event_loop(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    sessions = world.services.sessions
    for name in ("add", "valid", "end"):
        original = getattr(sessions, name)

        def recording(*args: Any, _original: Any = original) -> Any:
            threads.append(threading.current_thread().name)
            return _original(*args)

        monkeypatch.setattr(sessions, name, recording)
    c, _, csrf = logged_in(world.services, READER)
    c.post("/ui/logout", data={"csrf": csrf})
    assert len(threads) >= 3 and all(name.startswith("AnyIO worker thread") for name in threads), threads
    assert not inspect.iscoroutinefunction(routes._who)  # a sync dependency: FastAPI runs it in its thread pool


def test_services_without_any_state_keep_sessions_in_memory(world: World) -> None:
    world.services.dashboard = None
    bare = Services(
        api=world.services.api,
        model=world.services.model,
        datasets_dir=world.services.datasets_dir,
        workdir=world.services.workdir,
        metrics=Metrics(),
        policy=RetrainPolicy(),
    )
    c, saved, csrf = logged_in(bare, READER)
    assert c.post("/ui/logout", data={"csrf": csrf}).status_code == 303
    assert client(bare, saved).get("/ui/overview").status_code == 303


def test_ticketd_serve_keeps_sessions_in_its_sqlite_state_across_a_restart(tmp_path: Path) -> None:
    """`ticketd serve` on SQLite: the session outlives the process, and a logout outlives the next one."""
    (tmp_path / "models").mkdir()  # no model: serve answers all the same
    config = serve_config(tmp_path, {"tokens": [ADMIN], "read_tokens": [READER]})
    with ticketd_serve(tmp_path, config, ready="/ui/login") as served, httpx.Client(base_url=served.url) as browser:
        assert browser.post("/ui/login", data={"token": READER}).status_code == 303
        saved = browser.cookies[COOKIE]
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/overview").text)
        assert csrf is not None
    replay = {"Cookie": f"{COOKIE}={saved}"}
    with ticketd_serve(tmp_path, config, ready="/ui/login") as served:  # restarted: the cookie is still a session
        assert httpx.get(f"{served.url}/ui/overview", headers=replay, timeout=10).status_code == 200
        out = httpx.post(f"{served.url}/ui/logout", data={"csrf": csrf.group(1)}, headers=replay, timeout=10)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    with ticketd_serve(tmp_path, config, ready="/ui/login") as served:  # and the logout is still a logout
        refused = httpx.get(f"{served.url}/ui/overview", headers=replay, timeout=10)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
