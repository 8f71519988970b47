"""The dashboard over HTTP: access (login, roles, cookie, CSRF, public view), what each page shows, and
promote/rollback, against a real model store and a SQLite state filled with twelve weeks of decisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.web import create_app
from tests.support.paths import ROOT
from tests.support.world import ADMIN, READER, World, make_world

BASE = "http://127.0.0.1:8080"
PAGES = ("overview", "quality", "decisions", "models", "advisor")


@pytest.fixture
def world(tmp_path: Path, tiny_model: Path) -> Iterator[World]:
    world = make_world(tmp_path, tiny_model)
    yield world
    world.state.close()


def client(world: World) -> TestClient:
    return TestClient(create_app(world.services), base_url=BASE, follow_redirects=False)


def logged_in(world: World, token: str) -> TestClient:
    c = client(world)
    answer = c.post("/ui/login", data={"token": token, "next": "/ui/overview"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/overview"
    return c


def csrf_of(c: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/overview").text)
    assert found is not None
    return found.group(1)


def test_without_a_session_every_page_leads_to_the_login(world: World) -> None:
    c = client(world)
    for page in PAGES:
        answer = c.get(f"/ui/{page}")
        assert answer.status_code == 303 and answer.headers["location"] == f"/ui/login?next=/ui/{page}"
    assert c.post("/ui/models/v1/promote", data={"csrf": "x"}).status_code == 303
    assert world.store.current() == "v2"
    login = c.get("/ui/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "default-src 'none'" in login.headers["content-security-policy"]


def test_login_sets_an_httponly_strict_cookie_that_holds_no_token(world: World) -> None:
    c = client(world)
    refused = c.post("/ui/login", data={"token": "wrong"})
    assert refused.status_code == 401 and "not valid" in refused.text and "set-cookie" not in refused.headers
    answer = c.post("/ui/login", data={"token": READER, "next": "https://evil.example/"})
    assert answer.headers["location"] == "/ui/overview"  # never on to another site
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert READER not in cookie and ADMIN not in cookie
    assert c.get("/ui/overview").status_code == 200


def test_a_login_from_another_site_is_refused(world: World) -> None:
    c = client(world)
    forged = c.post("/ui/login", data={"token": READER}, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    cross = c.post("/ui/login", data={"token": READER}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403


def test_every_page_shows_its_data_to_a_read_only_viewer(world: World) -> None:
    c = logged_in(world, READER)
    pages = {page: c.get(f"/ui/{page}") for page in PAGES}
    assert all(answer.status_code == 200 for answer in pages.values())
    overview = pages["overview"].text
    assert "helpdesk" in overview and "failing" in overview and "the helpdesk did not answer (timeout)" in overview
    assert "v2" in overview and "Baseline" in overview
    quality = pages["quality"].text
    assert "50 closed tickets compared" in quality  # 60 decided, the newest ten still open
    assert quality.count('data-chart="weekly"') == 2 and 'data-chart="reliability"' in quality
    assert 'data-chart="coverage"' in quality and "clearly below target" in quality  # queue's target is 0.9
    assert 'class="n shade-' in quality  # the confusion matrix
    decisions = pages["decisions"].text
    assert decisions.count("AgentTicketZoom") == 60 and 'class="corrected"' in decisions
    assert "invoice, refund" not in decisions  # the words are ticket text: only with log.include_ticket_text
    models = pages["models"].text
    assert "champion" in models.lower() and "0.440" in models and "0.410" in models
    assert "Promote" not in models and "Roll back" not in models  # nothing to press for a read-only viewer
    assert "of 30 held-out tickets routed" in pages["advisor"].text


def test_decisions_filter_and_show_words_only_where_ticket_text_is_allowed(world: World) -> None:
    c = logged_in(world, READER)
    left = c.get("/ui/decisions", params={"label": "queue", "outcome": "left"}).text
    assert left.count("AgentTicketZoom") == 15  # every fourth of the 60 was left
    assert 'class="badge routed"' not in left
    assert c.get("/ui/decisions", params={"connector": "other"}).text.count("AgentTicketZoom") == 0
    assert c.get("/ui/decisions", params={"outcome": "nonsense"}).status_code == 422
    world.text_allowed[0] = True
    assert "invoice, refund" in c.get("/ui/decisions").text


def test_the_advisor_fits_thresholds_for_the_chosen_target(world: World) -> None:
    c = logged_in(world, READER)
    loose = c.get("/ui/advisor", params={"target": 0.5}).text
    strict = c.get("/ui/advisor", params={"target": 0.99}).text

    def routed(page: str) -> list[float]:
        return [float(v) for v in re.findall(r"([\d.]+)% of 30 held-out tickets routed", page)]

    assert len(routed(loose)) == 2 and all(a >= b for a, b in zip(routed(loose), routed(strict), strict=True))
    assert sum(routed(loose)) > sum(routed(strict))
    assert c.get("/ui/advisor", params={"target": 2}).status_code == 422


def test_a_read_only_viewer_cannot_promote_or_roll_back(world: World) -> None:
    c = logged_in(world, READER)
    csrf = csrf_of(c)
    assert c.get("/ui/models/v1/promote").status_code == 403
    assert c.post("/ui/models/v1/promote", data={"csrf": csrf}).status_code == 403
    assert c.post("/ui/models/rollback", data={"csrf": csrf}).status_code == 403
    assert world.store.current() == "v2" and world.services.model.get().version == "v2"


def test_an_admin_promotes_and_rolls_back_only_through_the_confirmation_form(world: World) -> None:
    c = logged_in(world, ADMIN)
    csrf = csrf_of(c)
    confirm = c.get("/ui/models/v1/promote")
    assert confirm.status_code == 200 and f'value="{csrf}"' in confirm.text
    assert world.store.current() == "v2"  # asking is not doing
    assert c.post("/ui/models/v1/promote", data={"csrf": "forged"}).status_code == 403
    assert c.post("/ui/models/v1/promote").status_code == 403
    cross = c.post("/ui/models/v1/promote", data={"csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and world.store.current() == "v2"
    done = c.post("/ui/models/v1/promote", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/ui/models?done=v1"
    assert world.store.current() == "v1" and world.services.model.get().version == "v1"
    assert c.post("/ui/models/v9/promote", data={"csrf": csrf}).status_code == 404
    assert c.post("/ui/models/rollback", data={"csrf": csrf}).status_code == 303
    assert world.store.current() == "v2" and world.services.model.get().version == "v2"


def test_logout_needs_the_form_and_ends_the_session(world: World) -> None:
    c = logged_in(world, READER)
    assert c.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    out = c.post("/ui/logout", data={"csrf": csrf_of(c)})
    assert out.status_code == 303 and 'ticketd_session=""' in out.headers["set-cookie"]
    c.cookies.clear()
    assert c.get("/ui/overview").status_code == 303


def test_a_token_removed_from_the_config_ends_its_sessions(world: World) -> None:
    c = logged_in(world, READER)
    world.services.api = world.services.api.model_copy(
        update={"read_tokens": [SecretStr("another-reader-token-0123456789")]}
    )
    assert c.get("/ui/overview").status_code == 303  # a SIGHUP reload without the token: logged out
    admin = logged_in(world, ADMIN)
    world.services.api = world.services.api.model_copy(update={"read_tokens": [SecretStr(READER)]})
    assert admin.get("/ui/overview").status_code == 303  # the token set changed: the signing key with it


def test_a_tampered_cookie_is_no_session(world: World) -> None:
    c = logged_in(world, READER)
    value = c.cookies["ticketd_session"]
    compressed = value.startswith(".")  # itsdangerous zlib-compresses a payload when that makes it shorter
    payload, rest = value.removeprefix(".").split(".", 1)
    import base64
    import json
    import zlib

    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = json.loads(zlib.decompress(raw) if compressed else raw)
    assert set(data) == {"f", "r", "c", "s"}  # fingerprint, role, CSRF value, session id
    data["r"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    c.cookies.set("ticketd_session", f"{forged}.{rest}", domain="127.0.0.1", path="/ui")
    assert c.get("/ui/models/v1/promote").status_code == 303


def test_public_dashboard_is_read_only_and_off_by_default(world: World, tmp_path: Path, tiny_model: Path) -> None:
    world.services.api = world.services.api.model_copy(update={"public_dashboard": True})
    c = client(world)
    page = c.get("/ui/models")
    assert page.status_code == 200 and "public view" in page.text and "Promote" not in page.text
    assert c.post("/ui/models/v1/promote", data={"csrf": ""}).status_code == 403
    assert world.store.current() == "v2"
    assert ApiSection().public_dashboard is False and ApiSection().dashboard is True


def test_no_tokens_means_nobody_logs_in(tmp_path: Path, tiny_model: Path) -> None:
    world = make_world(tmp_path, tiny_model, populate_state=False, tokens=[], read_tokens=[])
    try:
        c = client(world)
        assert "nobody can log in" in c.get("/ui/login").text
        assert c.post("/ui/login", data={"token": "anything"}).status_code == 401
        empty = TestClient(create_app(world.services), base_url=BASE)
        assert empty.get("/ui/overview").url.path == "/ui/login"
    finally:
        world.state.close()


def test_the_dashboard_can_be_switched_off(tmp_path: Path, tiny_model: Path) -> None:
    world = make_world(tmp_path, tiny_model, populate_state=False, dashboard=False)
    try:
        assert client(world).get("/ui/login").status_code == 404
    finally:
        world.state.close()


def test_serve_without_a_daemon_shows_models_and_says_why_the_rest_is_empty(world: World) -> None:
    world.services.dashboard = None
    c = logged_in(world, READER)
    for page in PAGES:
        answer = c.get(f"/ui/{page}")
        assert answer.status_code == 200, page
    assert "ticketd serve" in c.get("/ui/overview").text and "v2" in c.get("/ui/models").text
    assert 'data-chart="reliability"' in c.get("/ui/quality").text


def test_static_assets_are_shipped_in_the_package() -> None:
    root = ROOT / "daemon" / "web" / "ui" / "static"
    js = (root / "vendor" / "uplot" / "uPlot.iife.min.js").read_text(encoding="utf-8")
    assert "uPlot" in js and "http://" not in (root / "ui.js").read_text(encoding="utf-8")
    assert "https://" not in (root / "ui.css").read_text(encoding="utf-8")
