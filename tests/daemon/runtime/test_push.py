"""Pushes end to end: the daemon's API takes a helpdesk's push and routes the ticket once, for Znuny and Zammad.

Each flavour's push is built as that helpdesk sends it (tests/support/fakes: Zammad's signed trigger webhook,
Znuny's Ticket::Generic invoker with BasicAuth), the daemon runs in this process with its scheduler and
API, and polling is slowed to an hour, so only a push can route a ticket created after the first poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from structlog.testing import capture_logs

from connectors.errors import TransientError
from daemon.config import load_config
from daemon.errors import ConfigError
from daemon.runtime.daemon import Daemon
from daemon.runtime.push import Inbox, InboxFull
from daemon.web.hosting import start_api
from tests.support.daemon import API_TOKEN, PASSWORD, ZAMMAD_TOKEN
from tests.support.helpdesks import FLAVOURS, Helpdesk

SECRET = "push-s3cret-value"
SECRET_KEY = {"znuny": "push_token", "zammad": "webhook_secret"}


@dataclass
class Running:
    desk: Helpdesk
    daemon: Daemon
    api: httpx.AsyncClient

    def request(self, tid: int, secret: str | None = SECRET) -> tuple[dict[str, str], bytes]:
        """The push the helpdesk sends for a new ticket."""
        if self.desk.flavour == "zammad":
            return self.desk.zammad.webhook_request(tid, secret)
        return self.desk.znuny.invoker_request(tid, secret)

    async def push(self, tid: int, secret: str | None = SECRET) -> httpx.Response:
        headers, body = self.request(tid, secret)
        return await self.api.post("/api/v1/hooks/fake", content=body, headers=headers)

    async def routed(self, tids: list[int], timeout: float = 20.0) -> None:
        """Wait until every ticket left the inbound queue (the daemon wrote it back)."""
        for _ in range(int(timeout / 0.05)):
            if all(self.desk.queue_of(t) != self.desk.inbound for t in tids):
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"not routed within {timeout} s: {[t for t in tids if self.desk.queue_of(t) == self.desk.inbound]}")

    async def idle(self) -> None:
        """The push inbox is empty and no pushed ticket is being routed."""
        stack = self.daemon.stacks["fake"]
        for _ in range(400):
            if stack.inbox is not None and not len(stack.inbox) and not stack.active:
                await asyncio.sleep(0.2)
                if not len(stack.inbox) and not stack.active:
                    return
            await asyncio.sleep(0.05)
        pytest.fail("the push inbox did not drain")

    def metric(self, line: str) -> float:
        text = self.daemon.metrics.render()[0].decode()
        found = [row for row in text.splitlines() if row.startswith(line + " ")]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(desk: Helpdesk, tmp_path: Path, url: str, store: Path, **push: Any) -> Path:
    path = desk.config(tmp_path, url, store, push={"enabled": True, "poll_interval": 3600, **push})
    config = yaml.safe_load(path.read_text())
    config["connectors"][0][SECRET_KEY[desk.flavour]] = SECRET
    config["api"] = {"enabled": True, "host": "127.0.0.1", "port": _port(), "tokens": [API_TOKEN]}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(params=FLAVOURS)
async def running(
    request: pytest.FixtureRequest, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_ZAMMAD_TOKEN", ZAMMAD_TOKEN)
    desk = Helpdesk(request.param)
    with desk.served() as url:
        config = load_config(_config(desk, tmp_path, url, store))
        daemon = Daemon(config)
        await daemon.start()
        await start_api(daemon)
        serving = asyncio.create_task(daemon.serve())
        assert daemon.api is not None
        try:
            for _ in range(400):  # the first poll (at start) is over: from now on only pushes route
                if daemon.stacks["fake"].coordinator.last_success is not None:
                    break
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.api.port}", timeout=10) as api:
                yield Running(desk, daemon, api)
        finally:
            daemon.request_stop("test")
            await asyncio.wait_for(serving, 30)


pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_push_routes_its_ticket_at_once_and_a_replay_writes_nothing(running: Running) -> None:
    desk = running.desk
    tids = [desk.add_ticket("VPN keeps dropping", f"The VPN disconnects every few minutes ({i}).") for i in range(3)]
    answers = [await running.push(t) for t in tids]
    assert [a.status_code for a in answers] == [202] * 3, answers[0].text
    assert answers[0].json() == {"result": "accepted", "queued": 1}
    await running.routed(tids)
    writes = {t: desk.writes(t) for t in tids}
    assert all(n >= 1 for n in writes.values())
    for t in tids:  # the helpdesk retries, or a replay: the same request again
        assert (await running.push(t)).status_code == 202
    await running.idle()
    assert {t: desk.writes(t) for t in tids} == writes
    assert all(desk.notes(t) == 1 for t in tids)
    assert running.metric('ticketd_tickets_total{connector="fake",decision="applied"}') == 3
    assert running.metric('ticketd_pushes_total{connector="fake",result="accepted"}') == 6
    assert running.metric('ticketd_push_to_writeback_seconds_count{connector="fake"}') == 3
    assert running.metric('ticketd_connector_push_mode{connector="fake"}') == 1
    ready = (await running.api.get("/readyz", headers={"Authorization": f"Bearer {API_TOKEN}"})).json()
    assert ready["details"]["connectors"]["fake"]["mode"] == "push"


async def test_a_forged_or_unsigned_push_is_refused_counted_and_writes_nothing(running: Running) -> None:
    desk = running.desk
    tid = desk.add_ticket("Invoice charged twice", "We were billed twice for March.")
    with capture_logs() as logs:
        forged = await running.push(tid, secret="guessed-secret")
        unsigned = await running.push(tid, secret=None)
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert forged.json()["error"]["code"] == "push_rejected"
    await asyncio.sleep(0.5)
    assert desk.queue_of(tid) == desk.inbound and desk.writes(tid) == 0
    assert running.metric('ticketd_pushes_total{connector="fake",result="rejected"}') == 2
    assert running.metric('ticketd_auth_failures_total{kind="push"}') == 2
    # Logged once per client and minute, with its address: a flood of forged pushes is not a flood of lines.
    rejected = [e for e in logs if e["event"] == "credentials refused"]
    assert [(e["kind"], e["client"]) for e in rejected] == [("push", "127.0.0.1")]
    assert not any(SECRET in repr(e) or "guessed-secret" in repr(e) for e in logs)
    unknown = await running.api.post("/api/v1/hooks/nobody", content=b"{}")
    assert unknown.status_code == 404


async def test_a_burst_beyond_the_queue_gets_429_and_polling_routes_every_ticket_once(running: Running) -> None:
    desk = running.desk
    stack = running.daemon.stacks["fake"]
    assert stack.inbox is not None
    stack.inbox.limit = 3  # a small queue, so a burst of 8 overflows it
    tids = [desk.add_ticket(f"Password reset {i}", "I cannot reset my password, the link expired.") for i in range(8)]
    taken = stack.lanes  # each lane holds one id while it waits for its turn with the helpdesk
    async with contextlib.AsyncExitStack() as turns:
        for _ in range(stack.lanes):  # polls are talking to the helpdesk: pushed ids wait in the inbox meanwhile
            await turns.enter_async_context(stack.lock)
        answers = [await running.push(t) for t in tids[:taken]]
        for _ in range(200):
            if not len(stack.inbox):
                break
            await asyncio.sleep(0.01)
        answers += [await running.push(t) for t in tids[taken:]]
        again = await running.push(tids[taken])  # a retry of a push that is still waiting: coalesced
    accepted = taken + 3
    assert [a.status_code for a in answers] == [202] * accepted + [429] * (8 - accepted)
    refused = answers[accepted]
    assert refused.headers["Retry-After"] == "30" and refused.json()["error"]["code"] == "push_queue_full"
    assert again.json() == {"result": "duplicate", "queued": 0}
    await running.routed(tids[:accepted])
    await running.idle()
    assert all(desk.queue_of(t) == desk.inbound for t in tids[accepted:])  # refused: polling is the safety net
    await running.daemon.run_once()
    await running.routed(tids)
    assert all(desk.notes(t) == 1 for t in tids)
    assert running.metric('ticketd_tickets_total{connector="fake",decision="applied"}') == 8
    assert running.metric('ticketd_pushes_total{connector="fake",result="throttled"}') == 8 - accepted


async def test_push_without_the_connectors_secret_is_a_config_error(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    desk = Helpdesk("znuny")
    path = desk.config(tmp_path, "http://127.0.0.1:9", store, push={"enabled": True})
    daemon = Daemon(load_config(path))
    with pytest.raises(ConfigError, match=r"connectors\.fake\.routing\.push\.enabled: set connection\.push_token"):
        await daemon.start()
    if daemon.state is not None:
        daemon.state.close()


async def test_push_without_the_api_is_a_config_error_that_names_the_fix(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ZNUNY_PASSWORD", PASSWORD)
    path = Helpdesk("znuny").config(tmp_path, "http://127.0.0.1:9", store, push={"enabled": True})
    config = yaml.safe_load(path.read_text())
    config["connectors"][0]["push_token"] = SECRET  # the api section stays disabled
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(path))
    with pytest.raises(ConfigError, match=r"pushes arrive at the API \(POST /api/v1/hooks/fake\); set api\.enabled"):
        await daemon.start()
    if daemon.state is not None:
        daemon.state.close()


async def test_the_inbox_coalesces_waiting_ids_and_refuses_what_does_not_fit() -> None:
    inbox = Inbox(3)
    assert inbox.offer(["1", "2"]).queued == 2
    assert (inbox.offer(["2", "2"]).queued, inbox.offer(["2"]).coalesced) == (0, 1)
    with pytest.raises(InboxFull):
        inbox.offer(["3", "4"])  # both or neither: a push is answered as one
    assert len(inbox) == 2
    first = await inbox.take()
    assert first is not None and first[0] == "1"
    inbox.close()
    assert await inbox.take() is None


async def test_the_inbox_looks_again_at_a_not_yet_complete_id_a_bounded_number_of_times() -> None:
    inbox = Inbox(3, recheck=[0.01, 0.02])
    assert inbox.later("7", received=1.0) and inbox.later("7", received=1.0)
    assert await asyncio.wait_for(inbox.take(), 2) == ("7", 1.0)  # back with its first arrival time
    assert not inbox.later("7", received=1.0)  # looks used up: polling routes it
    assert inbox.later("8", received=2.0)
    inbox.close()  # a stop or reload: pending looks are dropped, not handed out
    await asyncio.sleep(0.05)
    assert len(inbox) == 0 and await inbox.take() is None


@pytest.mark.parametrize("running", ["znuny"], indirect=True)
async def test_a_znuny_push_that_comes_before_the_first_article_is_routed_once_the_article_is_there(
    running: Running,
) -> None:
    """Znuny's REST TicketCreate runs the TicketCreate invokers before it writes the article."""
    desk, znuny = running.desk, running.desk.znuny
    tid = desk.add_ticket("Keyboard", "Several keys of my keyboard stopped working.")
    article = znuny.ticket(tid).articles.pop()
    with capture_logs() as logs:
        assert (await running.push(tid)).status_code == 202
        await asyncio.sleep(1.0)
        assert desk.queue_of(tid) == desk.inbound and desk.writes(tid) == 0  # nothing classified from nothing
        znuny.ticket(tid).articles.append(article)
        await running.routed([tid], timeout=15)  # the next look (at most 8 s later), not the hourly poll
        await running.idle()
    assert desk.notes(tid) == 1
    assert running.metric('ticketd_push_rechecks_total{connector="fake"}') >= 1
    assert not any(e["event"] == "pushed ticket still not complete; left to polling" for e in logs)
    assert running.metric('ticketd_push_to_writeback_seconds_count{connector="fake"}') == 1
    assert running.daemon.stacks["fake"].coordinator.failures == 0  # early is not a failure of the helpdesk


@pytest.mark.parametrize("running", ["znuny"], indirect=True)
async def test_a_pushed_ticket_that_never_gets_an_article_is_left_to_polling_after_a_few_looks(
    running: Running,
) -> None:
    desk, znuny = running.desk, running.desk.znuny
    stack = running.daemon.stacks["fake"]
    assert stack.inbox is not None
    stack.inbox.recheck = (0.05, 0.05, 0.05)
    tid = desk.add_ticket("Monitor", "My second monitor flickers.")
    znuny.ticket(tid).articles.clear()
    with capture_logs() as logs:
        assert (await running.push(tid)).status_code == 202
        for _ in range(200):
            if any(e["event"] == "pushed ticket still not complete; left to polling" for e in logs):
                break
            await asyncio.sleep(0.05)
        await running.idle()
    left = [e for e in logs if e["event"] == "pushed ticket still not complete; left to polling"]
    assert [e["ticket_id"] for e in left] == [str(tid)]
    assert running.metric('ticketd_push_rechecks_total{connector="fake"}') == 3  # then no more looks
    assert desk.writes(tid) == 0 and stack.coordinator.state == "ok"


async def test_zammads_trigger_retries_a_refused_webhook_five_times_with_one_delivery_id(running: Running) -> None:
    """As Zammad's TriggerWebhookJob does: a refused call (here: signed with another token) is retried."""
    if running.desk.flavour != "zammad":
        pytest.skip("Zammad's own trigger")
    zammad, desk = running.desk.zammad, running.desk
    hook = str(running.api.base_url).rstrip("/") + "/api/v1/hooks/fake"
    webhook_id, _ = zammad.add_webhook_trigger(hook, "not-the-secret", groups=[desk.inbound])
    with zammad.webhook_worker.running(wait_scale=0.01) as worker:
        refused = desk.add_ticket("Scanner offline", "The scanner on floor 1 is offline.")
        assert await asyncio.to_thread(worker.wait_idle, 30)
        wrong = worker.attempts_for(refused)
        assert [a.status for a in wrong] == [401] * 5
        assert len({a.delivery for a in wrong}) == 1
        assert running.metric('ticketd_pushes_total{connector="fake",result="rejected"}') == 5
        assert desk.queue_of(refused) == desk.inbound  # polling waits an hour
        zammad.webhooks[webhook_id]["signature_token"] = SECRET  # the admin fixes the token
        tid = desk.add_ticket("Headset broken", "The left ear of my headset is silent.")
        await running.routed([tid])
        assert await asyncio.to_thread(worker.wait_idle, 30)
        assert [a.status for a in worker.attempts_for(tid)] == [202]
        await running.idle()
        assert desk.notes(tid) == 1


async def test_a_push_that_meets_a_failing_helpdesk_is_routed_after_a_short_pause_not_at_the_next_poll(
    running: Running,
) -> None:
    desk = running.desk
    tid = desk.add_ticket("Docking station", "The docking station does not charge the laptop.")
    desk.fake.fail_next(1)  # the first call for this push fails (5xx): a transient outage
    assert (await running.push(tid)).status_code == 202
    await running.routed([tid], timeout=20)  # SIGNAL_RETRY (5 s) after the failure, not an hour later
    await running.idle()
    assert desk.notes(tid) == 1


async def test_a_push_whose_write_back_fails_is_written_back_after_a_short_pause_not_at_the_next_poll(
    running: Running,
) -> None:
    """The write-back meets a dropped connection (Apache ending a keep-alive one): the ledger row is pending."""
    desk, stack = running.desk, running.daemon.stacks["fake"]
    apply, failed = stack.connector.apply, []

    async def dropped_once(update: Any) -> Any:
        if not failed:
            failed.append(update.ticket_id)
            raise TransientError("the server closed the connection, no answer")
        return await apply(update)

    stack.connector.apply = dropped_once  # type: ignore[method-assign]
    tid = desk.add_ticket("Docking station", "The docking station does not charge the laptop.")
    assert (await running.push(tid)).status_code == 202
    await running.routed([tid], timeout=20)  # SIGNAL_RETRY (5 s) after the failure, not an hour later
    await running.idle()
    assert failed == [str(tid)] and desk.notes(tid) == 1
    entry = running.daemon.state.ledger_get("fake", str(tid)) if running.daemon.state else None
    assert entry is not None and entry.state == "applied"
    assert running.metric('ticketd_push_to_writeback_seconds_count{connector="fake"}') == 1


@pytest.mark.parametrize("running", ["zammad"], indirect=True)
async def test_the_fake_zammads_own_trigger_routes_through_the_hook_and_a_refused_first_call_is_retried(
    running: Running,
) -> None:
    """Zammad's side end to end: the fake's trigger fires on create, its worker POSTs to the daemon's hook.

    The first call of each ticket is refused by the daemon (a token typo the admin then fixes: 401; a full push
    queue: 429); Zammad's retry 10 s later (scaled to 0.5 s) is accepted and the ticket is routed once.
    """
    desk, zammad = running.desk, running.desk.zammad
    stack = running.daemon.stacks["fake"]
    assert stack.inbox is not None
    hook = str(running.api.base_url).rstrip("/") + "/api/v1/hooks/fake"
    webhook_id, _ = zammad.add_webhook_trigger(hook, "a-typo", groups=[desk.inbound], states=["new"])
    worker = zammad.webhook_worker.start(wait_scale=0.05)
    try:

        async def first_try(tid: int) -> None:
            for _ in range(400):
                if worker.attempts_for(tid):
                    return
                await asyncio.sleep(0.01)
            pytest.fail("no webhook call")

        typo = desk.add_ticket("Scanner offline", "The scanner on floor 1 is offline.")
        await first_try(typo)
        zammad.webhooks[webhook_id]["signature_token"] = SECRET  # the admin fixes the webhook's token
        await running.routed([typo])

        limit, stack.inbox.limit = stack.inbox.limit, 0  # the push queue is full for the first call
        busy = desk.add_ticket("Headset broken", "The left ear of my headset is silent.")
        await first_try(busy)
        stack.inbox.limit = limit
        await running.routed([busy])
        assert await asyncio.to_thread(worker.wait_idle)
    finally:
        await asyncio.to_thread(worker.stop)
    await running.idle()
    for tid, refused in ((typo, 401), (busy, 429)):
        attempts = worker.attempts_for(tid)
        assert [a.status for a in attempts] == [refused, 202], attempts
        assert len({a.delivery for a in attempts}) == 1
        assert desk.notes(tid) == 1
    assert running.metric('ticketd_pushes_total{connector="fake",result="rejected"}') == 1
    assert running.metric('ticketd_pushes_total{connector="fake",result="throttled"}') == 1
    assert running.metric('ticketd_pushes_total{connector="fake",result="accepted"}') == 2
    assert running.metric('ticketd_tickets_total{connector="fake",decision="applied"}') == 2
