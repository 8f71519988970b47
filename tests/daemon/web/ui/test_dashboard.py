"""The dashboard over HTTP: access (login, roles, cookie, CSRF, public view), what each page shows, and
promote/rollback, against a real model store and a SQLite state filled with twelve weeks of decisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from pydantic import SecretStr

from daemon.config import ApiSection
from daemon.ml.thresholds import Evidence, Figure, Policy, fit
from daemon.pipeline.routing import LabelRule
from daemon.state import LedgerEntry
from daemon.web import create_app
from daemon.web.ui import data
from tests.support.paths import ROOT, STARTER
from tests.support.world import ADMIN, NOW, READER, World, make_world

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
    assert "routed tickets clearly below target" in quality  # 30 of 37 routed right: the pool is short of 0.9 too
    assert 'class="n shade-' in quality  # the confusion matrix
    decisions = pages["decisions"].text
    assert decisions.count("AgentTicketZoom") == 60 and 'class="corrected"' in decisions
    assert "invoice, refund" not in decisions  # the words are ticket text: only with log.include_ticket_text
    models = pages["models"].text
    assert "champion" in models.lower() and "0.440" in models and "0.410" in models
    assert "Promote" not in models and "Roll back" not in models  # nothing to press for a read-only viewer
    assert "of 30 evidence tickets" in pages["advisor"].text and 'table class="advisor fit"' in pages["advisor"].text


def test_decisions_filter_and_show_words_only_where_ticket_text_is_allowed(world: World) -> None:
    c = logged_in(world, READER)
    left = c.get("/ui/decisions", params={"label": "queue", "outcome": "left"}).text
    assert left.count("AgentTicketZoom") == 15  # every fourth of the 60 was left
    assert 'class="badge routed"' not in left
    assert c.get("/ui/decisions", params={"connector": "other"}).text.count("AgentTicketZoom") == 0
    assert c.get("/ui/decisions", params={"outcome": "nonsense"}).status_code == 422
    world.text_allowed[0] = True
    assert "invoice, refund" in c.get("/ui/decisions").text


def pooled_text(figure: Figure | None, target: float) -> str:
    """The pooled line the advisor and the Quality page print for a fit's figure."""
    assert figure is not None
    if not figure.routed:
        return f"nothing routed of {figure.tickets} evidence tickets at the target {100 * target:.1f}%"
    assert figure.coverage is not None and figure.estimate is not None
    assert figure.lower is not None and figure.upper is not None
    return (
        f"{100 * figure.coverage:.1f}% of {figure.tickets} evidence tickets routed at estimated "
        f"{100 * figure.estimate:.1f}% (lower {100 * figure.lower:.1f}%, upper {100 * figure.upper:.1f}%) "
        f"against the target {100 * target:.1f}%"
    )


FLOORED = LabelRule(
    target_precision=0.9, always=frozenset({"Technical Support"}), floors={"Customer Service": 0.95}, threshold=0.6
)


def test_the_advisor_fits_the_pooled_rule_for_the_target_and_a_connectors_floors_and_opt_outs(world: World) -> None:
    c = logged_in(world, READER)
    world.rules["helpdesk"]["queue"] = FLOORED
    evidence = world.services.model.get().classifier.heads["queue"].evidence
    assert evidence is not None
    bare = c.get("/ui/advisor", params={"target": 0.5}).text
    assert pooled_text(fit(evidence, Policy(0.5)).pooled, 0.5) in bare
    assert 'mark-always"' not in bare and 'mark-floor"' not in bare  # no connector: the target alone
    assert '<option value="helpdesk">helpdesk</option>' in bare

    page = c.get("/ui/advisor", params={"target": 0.5, "connector": "helpdesk"}).text
    policy = Policy.of(0.5, {"Customer Service": 0.95}, always=["Technical Support"])
    fitted = fit(evidence, policy)
    assert fitted.pooled is not None and fitted.pooled.routed >= 5  # always_route routes every one of its tickets
    assert f"queue: {pooled_text(fitted.pooled, 0.5)}" in page  # the page's target replaces the rule's 0.9
    assert '<option value="helpdesk" selected>helpdesk</option>' in page
    assert "Rule: min_precision Customer Service 0.95; always_route Technical Support." in page
    assert '<span class="badge mark-always">always_route</span>' in page
    assert '<span class="badge mark-floor">floor 0.95</span>' in page
    estimate = fitted.pooled.estimate
    floored = fitted.classes["Customer Service"].marks(estimate)  # 5 tickets, never 95% right: switched off
    assert len(floored) == 2 and f'<span class="badge mark-off">{floored[0]}</span>' in page
    queue = page[page.index("queue: ") : page.index('<h2 class="pooled">priority: ')]
    marks = [mark for c in fitted.classes.values() for mark in c.marks(estimate)]
    for mark in marks:  # every class's marks, as often as classes carry them
        assert queue.count(f">{escape(mark)}</span>") == marks.count(mark)
    forced = fitted.classes["Technical Support"].figure
    assert forced.estimate is not None and forced.lower is not None and forced.upper is not None
    row = f'{100 * forced.estimate:.1f}%</td>\n  <td class="n">{100 * forced.lower:.1f}% – {100 * forced.upper:.1f}%'
    assert row in page and f"{forced.correct} / {forced.routed}" in page
    if fitted.pooled.lower is not None and fitted.pooled.lower < 0.5:
        assert "pooled lower bound below the target" in page  # always_route alone may pull the pool under it

    assert c.get("/ui/advisor", params={"connector": "nowhere"}).status_code == 404
    assert c.get("/ui/advisor", params={"target": 2}).status_code == 422
    world.services.dashboard = None  # `ticketd serve`: no connectors to choose
    assert 'name="connector"' not in c.get("/ui/advisor").text


def test_a_fit_shows_every_class_with_its_marks() -> None:
    """Two routed classes (one below the pooled figure), a floored one, one with too few tickets, one never routed."""
    rng = np.random.default_rng(7)
    names = ["sure", "fair", "floored", "rare", "never"]
    sizes = [40, 40, 30, 3, 20]
    precision = [1.0, 0.9, 0.6, 1.0, 1.0]
    predicted, confidence, correct = [], [], []
    for k, (n, p) in enumerate(zip(sizes, precision, strict=True)):
        predicted += [k] * n
        confidence += list(rng.uniform(0.5, 0.99, n))
        correct += list(rng.random(n) < p)
    evidence = Evidence(names, np.array(predicted), np.round(np.array(confidence), 4), np.array(correct))
    rule = LabelRule(target_precision=0.99, never=frozenset({"never"}), floors={"floored": 0.95})
    [head] = data.advisor({"queue": evidence}, 0.8, {"queue": rule})
    rows = {row["class"]: row for row in head["classes"]}
    kinds = {name: [m["kind"] for m in row["marks"]] for name, row in rows.items()}
    assert kinds == {"sure": [], "fair": ["below"], "floored": ["off", "floor"], "rare": ["off"], "never": ["never"]}
    assert rows["floored"]["reason"] == "its estimated precision never reaches its floor 0.95"
    assert rows["rare"]["reason"] == "not enough closed tickets: 3, needs 5"
    assert rows["fair"]["estimate"] < head["pooled"]["estimate"] <= rows["sure"]["estimate"]
    assert rows["sure"]["threshold"] is not None and rows["never"]["threshold"] is None
    assert head["target"] == 0.8 and head["meets"] and head["pooled"]["lower"] >= 0.8
    assert head["rule"] == ["min_precision floored 0.95", "never_route never"]
    assert head["pooled"]["routed"] == rows["sure"]["routed"] + rows["fair"]["routed"]


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


def test_quality_shows_the_served_fit_per_class_and_the_live_pooled_flag(world: World) -> None:
    c = logged_in(world, READER)
    world.rules["helpdesk"]["queue"] = FLOORED
    model = world.services.model.get()
    fitted = model.thresholds("queue", FLOORED.policy(model.classes("queue")))
    assert fitted is not None
    page = c.get("/ui/quality").text
    live = page[: page.index("Model · queue")]
    assert "(37 tickets) at 81.1% precision together, 95% upper bound 89.4%, against the target 90.0%" in live
    assert '<span class="badge flagged">routed tickets clearly below target</span>' in live
    served = page[page.index("Model · queue") : page.index("Model · priority")]
    assert "Per class as served: connector helpdesk&#39;s routing.labels.queue" in served
    assert f"{pooled_text(fitted.pooled, 0.9)}." in served and '<table class="served fit">' in served
    assert '<span class="badge mark-always">always_route</span>' in served
    assert '<span class="badge mark-floor">floor 0.95</span>' in served
    priority = page[page.index("Model · priority") :]
    assert "the model&#39;s fit at its training target" in priority  # no connector sets priority's target

    world.rules["helpdesk"]["queue"] = LabelRule(target_precision=0.85)  # the bound, 89.4%, is above it
    relaxed = c.get("/ui/quality").text
    assert "routed tickets clearly below target" not in relaxed and "against the target 85.0%" in relaxed
    assert "clearly below target" in relaxed  # two classes' own bounds are still below 0.85


MESSAGE_ID = "<CAF3xQ7b2Vn9kLpR0sT4uWy6zA8cE1gH3jK5mN7pQ9s@mail.example.com>"


def test_a_ticket_is_named_by_a_short_stable_id() -> None:
    assert data.ticket_name("4711") == "4711" and data.ticket_name("2026120410000012") == "2026120410000012"
    name = data.ticket_name(MESSAGE_ID)
    assert name.startswith("CAF3xQ…") and len(name) == 13 and data.ticket_name(MESSAGE_ID) == name
    sibling = MESSAGE_ID.replace("9s@", "9t@")  # the same mailer's next mail: the same start, another name
    assert data.ticket_name(sibling) != name and data.ticket_name(sibling).startswith("CAF3xQ…")
    assert data.ticket_name("maildir:1733650000.M2P3.mailhost").startswith("173365…")


def test_decisions_name_a_message_id_ticket_short_and_its_subject_only_where_ticket_text_is_allowed(
    world: World,
) -> None:
    subject = "Refund for the double charge"
    world.state.ledger_begin(
        LedgerEntry(
            connector="mailbox",
            ticket_id=MESSAGE_ID,
            model_version="v2",
            predictions={"queue": {"label": "Billing", "confidence": 0.93}},
            decision={"queue": "Billing", "routed": {"queue": True}, "subject": subject},
            mode="live",
            state="applied",
            detail=None,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    c = logged_in(world, READER)
    page = c.get("/ui/decisions", params={"connector": "mailbox"}).text
    name = data.ticket_name(MESSAGE_ID)
    full = str(escape(MESSAGE_ID))
    assert f">#{name}</a>" in page and f">#{full}<" not in page  # shown short, never the raw Message-ID
    assert f'title="{full}"' in page  # the whole id on hover
    assert f"TicketID={full}" in page  # the link still opens this very ticket
    assert subject not in page  # the subject is ticket text: only with log.include_ticket_text
    world.text_allowed[0] = True
    assert f'<div class="subject">{subject}</div>' in c.get("/ui/decisions", params={"connector": "mailbox"}).text
    source = world.services.dashboard
    assert source is not None
    source.ticket_url = lambda connector, tid: None  # a Maildir or IMAP mailbox has no ticket page to link to
    page = c.get("/ui/decisions", params={"connector": "mailbox"}).text
    assert f'<span class="ticket" title="{full}">#{name}</span>' in page


@pytest.fixture(scope="module")
def starter_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter data's TF-IDF model, as `make run` would serve it: its evidence is every ticket, out of fold."""
    from daemon.ml.train import TrainOptions, train

    out = tmp_path_factory.mktemp("starter") / "model"
    train(STARTER, out, TrainOptions(tfidf_weights=(1.0,)))
    return out


def test_overview_and_quality_say_how_many_held_out_tickets_the_model_was_judged_on(
    tmp_path: Path, starter_model: Path
) -> None:
    world = make_world(tmp_path, starter_model)
    try:
        c = logged_in(world, READER)
        meta = world.services.model.get().classifier.metadata
        expected = [meta["heads"][name]["validation"]["rows"] for name in ("queue", "priority")]
        evidence = world.services.model.get().classifier.heads["queue"].evidence
        assert evidence is not None and len(evidence.correct) == meta["data"]["rows"] != expected[0]
        judged = re.compile(r'<span class="judged"[^>]*>(\d+) held-out tickets</span>')
        overview, quality = c.get("/ui/overview").text, c.get("/ui/quality").text
        assert [int(n) for n in judged.findall(overview)] == expected
        assert [int(n) for n in judged.findall(quality)] == expected
        assert (
            f"{meta['data']['rows']} held-out" not in quality
        )  # the out-of-fold evidence is not what it was judged on
        assert f"{meta['data']['rows']} evidence tickets, each scored by a model that had not seen it" in quality
    finally:
        world.state.close()
