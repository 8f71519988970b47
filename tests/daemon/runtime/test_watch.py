"""Mailboxes that signal new mail (IMAP IDLE on a real Dovecot, file events on a Maildir) route it at once.

The daemon runs in this process with polling slowed to an hour, so only the mailbox's own signal can route
a mail delivered after the first poll. IMAP's IDLE connection goes through a relay that can cut it: the
daemon falls back to polling with one warning, and returns to push mode with one recovery line.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from daemon.config import load_config
from daemon.runtime.daemon import Daemon
from tests.support.backends.imap import ImapHarness
from tests.support.backends.maildir import MaildirHarness
from tests.support.daemon import every_label
from tests.support.fakes.dovecot import NO_IDLE, Dovecot, shared_dovecot
from tests.support.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
FOLDERS = ("Bestellungen-Übersicht", "Rückfragen", "Allgemein")
Mailbox = ImapHarness | MaildirHarness


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _connection(box: Mailbox) -> dict[str, Any]:
    config = box.config()
    raw: dict[str, Any] = json.loads(config.model_dump_json())
    if isinstance(box, ImapHarness):
        raw["password"] = config.password.get_secret_value()
    return {k: v for k, v in raw.items() if v is not None}


def _config(tmp_path: Path, store: Path, box: Mailbox, **routing: Any) -> Path:
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "connectors": [
            {
                **_connection(box),
                "name": "mail",
                "routing": {
                    "poll_interval": 3600,
                    "jitter": 0,
                    "push": {"enabled": True, "poll_interval": 3600},
                    "labels": every_label(queues, priorities, FOLDERS, ["high", "medium", "low"]),
                    **routing,
                },
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Running:
    box: Mailbox
    daemon: Daemon

    def mode(self) -> str:
        return str(self.daemon.readiness()[1]["connectors"]["mail"]["mode"])

    def metric(self, line: str) -> float:
        text = self.daemon.metrics.render()[0].decode()
        found = [row for row in text.splitlines() if row.startswith(line + " ")]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        await until(check, what, timeout)

    async def routed(self, tids: list[str], timeout: float = 10.0) -> None:
        """Every mail left the inbound folder: the daemon moved it."""
        await self.until(lambda: all(self.box.queue_of(t) != "INBOX" for t in tids), f"{tids} routed", timeout)


@pytest.fixture
async def daemon_for(tmp_path: Path, store: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Daemon, asyncio.Task[None]]] = []

    async def start(box: Mailbox, **routing: Any) -> Running:
        daemon = Daemon(load_config(_config(tmp_path, store, box, **routing)))
        await daemon.start()
        started.append((daemon, asyncio.create_task(daemon.serve())))
        running = Running(box, daemon)
        await running.until(lambda: daemon.stacks["mail"].coordinator.last_success is not None, "the first poll")
        return running

    yield start
    for daemon, serving in started:
        daemon.request_stop("test")
        await asyncio.wait_for(serving, 30)


@pytest.fixture(params=["maildir", "imap"])
async def box(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mailbox]:
    harness: Mailbox = MaildirHarness(tmp_path) if request.param == "maildir" else ImapHarness(shared_dovecot())
    try:
        yield harness
    finally:
        await harness.aclose()


async def test_new_mail_is_routed_at_once_while_polling_waits_an_hour(
    box: Mailbox, daemon_for: Callable[..., Any]
) -> None:
    running: Running = await daemon_for(box)
    await running.until(lambda: running.mode() == "push", "push mode")
    assert running.metric('ticketd_connector_push_mode{connector="mail"}') == 1
    tids = [
        box.add_ticket(f"Laptop {i} will not boot", f"The screen stays black after the logo ({i}).") for i in range(3)
    ]
    await running.routed(tids)
    assert all(box.writes(t) >= 1 for t in tids)
    late = box.add_ticket("Printer jams", "Every second page jams in tray 2.")
    await running.routed([late])
    # The late mail came long after the catch-up poll at the watch's start: only the signal can have routed it,
    # and the poll it woke is timed once it has recorded the ticket (just after the move the harness sees).
    count = 'ticketd_push_to_writeback_seconds_count{connector="mail"}'
    await running.until(lambda: running.metric(count) >= 1, "the signal-to-write-back time recorded", timeout=5)


async def test_a_cut_idle_connection_falls_back_to_polling_once_and_returns_to_push(
    daemon_for: Callable[..., Any],
) -> None:
    box = ImapHarness(shared_dovecot())
    try:
        with capture_logs() as logs:
            running: Running = await daemon_for(box, recover_after=0)
            await running.until(lambda: running.mode() == "push", "push mode")
            box.proxy.cut()
            await running.until(lambda: running.mode() == "poll", "poll mode after the cut")
            assert running.metric('ticketd_connector_push_mode{connector="mail"}') == 0
            await running.until(lambda: running.mode() == "push", "push mode again", timeout=30)
            tid = box.add_ticket("Monitor flickers", "The left monitor flickers when it warms up.")
            await running.routed([tid])  # the cut also failed a poll: the signal ended its hour of backoff
        failing = [e for e in logs if e["event"] == "connector failing; backing off" and e.get("job") == "watch"]
        recovered = [e for e in logs if e["event"] == "connector recovered" and e.get("job") == "watch"]
        assert len(failing) == 1 and "connection lost" in failing[0]["error"]
        assert len(recovered) == 1
        modes = [e["event"] for e in logs if e["event"].startswith("connector ") and " mode: " in e["event"]]
        assert [m.split(":")[0] for m in modes] == [
            "connector in push mode",
            "connector back in poll mode",
            "connector in push mode",
        ]
    finally:
        await box.aclose()


async def test_a_server_without_idle_is_polled_at_the_normal_interval(daemon_for: Callable[..., Any]) -> None:
    root = Path(tempfile.mkdtemp(prefix="ticketd-dovecot-noidle-"))
    server = Dovecot(root, extra=NO_IDLE).start()
    box = ImapHarness(server)
    try:
        with capture_logs() as logs:
            running: Running = await daemon_for(box, poll_interval=0.5)
            tid = box.add_ticket("Keyboard missing keys", "The F and J keys came off.")
            await running.routed([tid])
        assert running.mode() == "poll"
        assert [e["connector"] for e in logs if e["event"] == "helpdesk cannot signal new work; polling"] == ["mail"]
    finally:
        await box.aclose()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
