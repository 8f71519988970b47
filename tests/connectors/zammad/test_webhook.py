"""Zammad's side of a push: the shipped webhook and trigger, and the fake's trigger webhooks, against Zammad's facts.

The facts and where they come from: tests/connectors/zammad/fixtures/README.md. Every delivery here goes to a
small HTTP receiver on 127.0.0.1 (or to a closed loopback port); the worker's retry waits are scaled down.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.errors import PushRejected
from connectors.registry import connector_class, parse_config
from tests.support.fakes.zammad import WEBHOOK_ATTEMPTS, WEBHOOK_RETRY_WAITS, FakeZammad, HttpError

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "zammad"
SECRET = "webhook-s3cret"
ADMIN = {"Authorization": "Token token=admin-token"}
SCALE = 0.01  # retry waits of 0.1 .. 0.4 s


class Receiver:
    """ticketd's hook as far as Zammad can tell: records each request, answers the scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, *, default: int = 202, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.delay = delay
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = self.base + "/api/v1/hooks/zammad"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeZammad]:
    fake = FakeZammad()
    fake.add_token("admin-token", permissions={"admin.webhook", "admin.trigger", "ticket.agent"})
    yield fake
    fake.webhook_worker.stop()
    assert not any(t.name == "fake-zammad-webhooks" for t in threading.enumerate())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _connector(fake: FakeZammad, secret: str = SECRET) -> Connector:
    raw = {"type": "zammad", "url": "http://zammad.test", "token": "zammad-test-token", "inbound_groups": ["Users"]}
    config = parse_config({**raw, "webhook_secret": secret})
    return connector_class("zammad").from_config(config, httpx.AsyncClient(transport=fake.transport()))


def _api(fake: FakeZammad, method: str, path: str, body: Any = None, headers: dict[str, str] = ADMIN) -> Any:
    with httpx.Client(transport=fake.transport(), base_url="http://zammad.test/api/v1") as client:
        return client.request(method, path, json=body, headers=headers)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.01)


def _shipped(fake: FakeZammad, base: str, connector: str = "zammad") -> tuple[dict[str, Any], dict[str, Any]]:
    """deploy/zammad/*.json with the README's placeholders filled in, the trigger after the webhook exists."""
    webhook = (
        (DEPLOY / "webhook.json")
        .read_text()
        .replace("https://ticketd.example.internal:8080", base)
        .replace("CONNECTOR_NAME", connector)
        .replace("CHANGE-ME-webhook-secret", SECRET)
    )
    created = _api(fake, "POST", "/webhooks", json.loads(webhook))
    assert created.status_code == 201, created.text
    groups = {g["name"]: g["id"] for g in _api(fake, "GET", "/groups").json()}
    trigger = (
        (DEPLOY / "trigger.json")
        .read_text()
        .replace('"WEBHOOK_ID"', json.dumps(str(created.json()["id"])))
        .replace('"INBOUND_GROUP_ID"', json.dumps(str(groups["Users"])))
    )
    made = _api(fake, "POST", "/triggers", json.loads(trigger))
    assert made.status_code == 201, made.text
    return created.json(), made.json()


# ---- the shipped definitions --------------------------------------------------------------------------


def test_the_shipped_files_are_json_with_what_zammad_requires_and_only_documented_placeholders() -> None:
    webhook = json.loads((DEPLOY / "webhook.json").read_text())
    trigger = json.loads((DEPLOY / "trigger.json").read_text())
    assert webhook["name"] and re.fullmatch(r"https?://[^/]+/api/v1/hooks/CONNECTOR_NAME", webhook["endpoint"])
    assert webhook["ssl_verify"] is True and webhook["active"] is True and webhook["customized_payload"] is False
    assert webhook["signature_token"] == "CHANGE-ME-webhook-secret"
    assert trigger["name"] and trigger["active"] is True
    assert (trigger["activator"], trigger["execution_condition_mode"]) == ("action", "selective")
    assert trigger["condition"] == {
        "ticket.action": {"operator": "is", "value": "create"},
        "ticket.group_id": {"operator": "is", "value": ["INBOUND_GROUP_ID"]},
        "ticket.state_id": {"operator": "is", "value": ["1"]},  # `new`: id 1 in Zammad's seeds
    }
    assert trigger["perform"] == {"notification.webhook": {"webhook_id": "WEBHOOK_ID"}}
    assert len(trigger["note"]) <= 250 and len(webhook["note"]) <= 500
    readme = (DEPLOY / "README.md").read_text()
    for placeholder in (
        "https://ticketd.example.internal:8080",
        "CONNECTOR_NAME",
        "CHANGE-ME-webhook-secret",
        "WEBHOOK_ID",
        "INBOUND_GROUP_ID",
    ):
        assert f"| `{placeholder}` |" in readme, placeholder  # each has its row in the README's table


def test_the_shipped_definitions_created_through_the_api_fire_only_on_new_tickets_in_the_inbound_group(
    fake: FakeZammad, receiver: Receiver
) -> None:
    webhook, trigger = _shipped(fake, receiver.base)
    assert webhook["endpoint"] == receiver.url and webhook["signature_token"] == SECRET
    assert trigger["perform"]["notification.webhook"]["webhook_id"] == str(webhook["id"])
    assert [t["name"] for t in _api(fake, "GET", "/triggers").json()] == ["ticketd: new ticket"]
    with fake.webhook_worker.running(wait_scale=SCALE) as worker:
        routed = fake.create_ticket("VPN down", "Since this morning.", group="Users")
        fake.create_ticket("Quote", "Please send an offer.", group="Sales")  # not an inbound group
        fake.create_ticket("Follow-up", "As discussed.", group="Users", state="open")  # not new
        assert worker.wait_idle()
    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/api/v1/hooks/zammad"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "Zammad User Agent"
    assert headers["x-zammad-trigger"] == "ticketd: new ticket"
    assert uuid.UUID(headers["x-zammad-delivery"])
    push = _connector(fake).read_push(headers, body)
    assert push.ticket_ids == (str(routed),) and push.delivery == headers["x-zammad-delivery"]


@pytest.mark.parametrize(
    ("path", "change", "error"),
    [
        ("/webhooks", {"name": ""}, "Name can't be blank"),
        ("/webhooks", {"endpoint": "ticketd.internal:8080/hook"}, "no http or https protocol"),
        ("/webhooks", {"endpoint": "http:///api/v1/hooks/zammad"}, "no hostname"),
        ("/triggers", {"perform": {"notification.webhook": {"webhook_id": ""}}}, "webhook_id"),
        ("/triggers", {"activator": "sometimes"}, "Activator"),
        ("/triggers", {"condition": {"ticket.group_id": {"operator": "matches", "value": ["1"]}}}, "selector"),
    ],
)
def test_what_zammad_refuses_is_422_and_unknown_attributes_are_dropped(
    fake: FakeZammad, path: str, change: dict[str, Any], error: str
) -> None:
    base = json.loads((DEPLOY / ("webhook.json" if path == "/webhooks" else "trigger.json")).read_text())
    answer = _api(fake, "POST", path, {**base, **change})
    assert answer.status_code == 422 and error in answer.json()["error"]
    kept = _api(fake, "POST", path, {**base, "no_such_attribute": 1})
    assert kept.status_code == 201 and "no_such_attribute" not in kept.json()
    if path == "/triggers":  # names are unique, ignoring case
        again = _api(fake, "POST", path, {**base, "name": base["name"].upper()})
        assert again.status_code == 422 and "already been taken" in again.json()["error"]


def test_creating_webhooks_and_triggers_needs_the_admin_permissions(fake: FakeZammad) -> None:
    agent = {"Authorization": "Token token=zammad-test-token"}  # ticket.agent, admin.user: not enough
    hook = json.loads((DEPLOY / "webhook.json").read_text())
    assert _api(fake, "POST", "/webhooks", hook, agent).status_code == 403
    assert _api(fake, "POST", "/triggers", json.loads((DEPLOY / "trigger.json").read_text()), agent).status_code == 403


# ---- what the worker sends ----------------------------------------------------------------------------


def test_the_webhook_is_signed_as_the_connector_verifies_and_carries_the_default_payload(
    fake: FakeZammad, receiver: Receiver
) -> None:
    fake.add_webhook_trigger(receiver.url, SECRET, groups=["Users"])
    with fake.webhook_worker.running(wait_scale=SCALE) as worker:
        tid = fake.create_ticket("Printer", "Offline again.", group="Users")
        assert worker.wait_idle()
    fake.add_article(tid, "ticketd note", internal=True)  # a later article is not the one that fired
    (_, headers, body) = receiver.requests[0]
    assert headers["x-hub-signature"].startswith("sha1=") and len(headers["x-hub-signature"]) == 45
    assert _connector(fake).read_push(headers, body).ticket_ids == (str(tid),)
    with pytest.raises(PushRejected):
        _connector(fake, secret="another-secret").read_push(headers, body)
    payload = json.loads(body)
    assert list(payload) == ["ticket", "article"]
    ticket, article = payload["ticket"], payload["article"]
    assert list(ticket) == sorted(ticket) and ticket["id"] == tid
    assert ticket["group"]["name"] == "Users" and ticket["priority"]["name"] == "2 normal"
    assert ticket["customer"]["login"] == "nicole.braun@zammad.org" and "password" not in ticket["customer"]
    assert ticket["organization"] == {}
    assert article["body"] == "Offline again." and article["accounted_time"] == 0
    assert article["created_by"]["login"] == "nicole.braun@zammad.org"


def test_without_a_signature_token_there_is_no_signature_header(fake: FakeZammad, receiver: Receiver) -> None:
    fake.add_webhook_trigger(receiver.url, None)
    with fake.webhook_worker.running(wait_scale=SCALE) as worker:
        fake.create_ticket("Printer", "Offline again.")
        assert worker.wait_idle()
    assert "x-hub-signature" not in receiver.requests[0][1]
    with pytest.raises(PushRejected):
        _connector(fake).read_push(receiver.requests[0][1], receiver.requests[0][2])


def test_a_500_is_retried_with_the_same_delivery_after_10_then_20_seconds_scaled(fake: FakeZammad) -> None:
    receiver = Receiver([500, 500], default=202)
    try:
        fake.add_webhook_trigger(receiver.url, SECRET)
        with fake.webhook_worker.running(wait_scale=SCALE) as worker:
            tid = fake.create_ticket("Printer", "Offline again.")
            assert worker.wait_idle()
        attempts = worker.attempts_for(tid)
        assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 202)]
        assert len({a.delivery for a in attempts}) == 1 and not worker.given_up
        assert len({r[1]["x-zammad-delivery"] for r in receiver.requests}) == 1
        gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(attempts)]
        for gap, wait in zip(gaps, WEBHOOK_RETRY_WAITS, strict=False):
            assert wait * SCALE <= gap < wait * SCALE + 0.5
    finally:
        receiver.close()


@pytest.mark.parametrize("answer", [301, 401, 404, 429, 503, "refused", "not loopback"])
def test_every_failure_is_retried_until_five_tries_then_the_job_gives_up(fake: FakeZammad, answer: int | str) -> None:
    receiver = Receiver([], default=answer if isinstance(answer, int) else 202)
    endpoint = {
        "refused": f"http://127.0.0.1:{_closed_port()}/api/v1/hooks/zammad",
        "not loopback": "https://ticketd.example.internal:8080/api/v1/hooks/zammad",
    }.get(str(answer), receiver.url)
    try:
        fake.add_webhook_trigger(endpoint, SECRET)
        with fake.webhook_worker.running(wait_scale=0.002) as worker:
            tid = fake.create_ticket("Printer", "Offline again.")
            assert worker.wait_idle()
            time.sleep(0.2)  # longer than any scaled wait: no sixth try comes
        attempts = worker.attempts_for(tid)
        assert len(attempts) == WEBHOOK_ATTEMPTS == 5
        assert len({a.delivery for a in attempts}) == 1 and worker.given_up == [attempts[0].delivery]
        if isinstance(answer, int):
            assert [a.status for a in attempts] == [answer] * 5 and len(receiver.requests) == 5
        else:
            assert all(a.status is None and a.error for a in attempts) and not receiver.requests
    finally:
        receiver.close()


def test_each_try_is_built_anew_so_a_token_fixed_between_tries_passes(fake: FakeZammad, receiver: Receiver) -> None:
    webhook_id, _ = fake.add_webhook_trigger(receiver.url, "a-typo")
    receiver.statuses = [401]  # ticketd refuses the first call: its signature does not match
    with fake.webhook_worker.running(wait_scale=0.05) as worker:
        tid = fake.create_ticket("Printer", "Offline again.")
        _wait(lambda: worker.attempts_for(tid))
        fake.webhooks[webhook_id]["signature_token"] = SECRET  # the admin fixes the webhook
        assert worker.wait_idle()
    first, second = receiver.requests
    with pytest.raises(PushRejected):
        _connector(fake).read_push(first[1], first[2])
    assert _connector(fake).read_push(second[1], second[2]).ticket_ids == (str(tid),)
    assert first[1]["x-zammad-delivery"] == second[1]["x-zammad-delivery"]


def test_an_inactive_webhook_sends_nothing_and_jobs_wait_for_the_worker(fake: FakeZammad, receiver: Receiver) -> None:
    webhook_id, _ = fake.add_webhook_trigger(receiver.url, SECRET)
    fake.webhooks[webhook_id]["active"] = False  # the trigger still fires; its job finds no active webhook
    fake.add_webhook_trigger("http://127.0.0.1:9/hook", SECRET, name="inactive trigger", active=False)
    live = Receiver()
    try:
        fake.add_webhook_trigger(live.url, SECRET, name="another")
        tid = fake.create_ticket("Printer", "Offline again.")  # the worker is not running yet: the jobs wait
        assert fake.webhook_worker.pending() == 2  # an inactive trigger does not fire
        with fake.webhook_worker.running(wait_scale=SCALE) as worker:
            assert worker.wait_idle()
        assert not receiver.requests and len(live.requests) == 1 and len(worker.dropped) == 1
        assert [a.ticket_id for a in worker.attempts] == [tid]
    finally:
        live.close()


def test_stop_ends_the_worker_with_a_retry_pending_and_after_a_request_in_flight(fake: FakeZammad) -> None:
    slow = Receiver([500], delay=0.3)
    try:
        fake.add_webhook_trigger(slow.url, SECRET)
        worker = fake.webhook_worker.start(wait_scale=10.0)  # the retry would wait 100 s
        fake.create_ticket("Printer", "Offline again.")
        _wait(lambda: worker.attempts)
        started = time.monotonic()
        worker.stop()
        assert time.monotonic() - started < 2 and not worker.alive and worker.pending() == 0
        fake.create_ticket("Scanner", "Offline too.")  # queued for the next start, not sent now
        worker.start(wait_scale=SCALE)
        _wait(lambda: len(slow.requests) == 2)  # a request in flight when stop is called...
        worker.stop()  # ...ends first: stop waits for it, bounded by the timeouts
        assert not worker.alive and len(worker.attempts) == 2
        assert not any(t.name == "fake-zammad-webhooks" for t in threading.enumerate())
    finally:
        slow.close()


def test_the_convenience_trigger_takes_names_and_unknown_names_are_refused(fake: FakeZammad) -> None:
    _, trigger_id = fake.add_webhook_trigger("http://127.0.0.1:9/hook", SECRET, groups=["Users", "Sales"])
    condition = fake.triggers[trigger_id]["condition"]
    assert condition["ticket.group_id"] == {"operator": "is", "value": ["1", "2"]}
    with pytest.raises(HttpError):
        fake.add_webhook_trigger("http://127.0.0.1:9/hook", SECRET, name="x", states=["no such state"])
