"""The helpdesks the reliability suites run the daemon against, behind one small interface.

Each flavour serves its fake on a real port (optionally behind `Faulty`), adds customer tickets to
the inbound queue, writes the daemon's config for it and reads back what the daemon did per ticket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import PASSWORD, ZAMMAD_TOKEN, events
from tests.support.daemon import daemon as start_daemon
from tests.support.fakes.faults import Faulty
from tests.support.fakes.http import serve
from tests.support.fakes.zammad import FakeZammad
from tests.support.fakes.znuny import FakeZnuny

FLAVOURS = ("znuny", "zammad")
TOKEN = ZAMMAD_TOKEN
__all__ = ["FLAVOURS", "TOKEN", "Helpdesk", "routed_count", "start_daemon"]


class Helpdesk:
    """One fake helpdesk as the suites see it."""

    flavour: str
    inbound: str
    queues: list[str]
    priorities: list[str]

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.lock = threading.Lock()  # the served fake answers one call at a time under it; so do these methods
        if flavour == "znuny":
            self.znuny = FakeZnuny(passwords={"agent1": PASSWORD})
            self.znuny.agent_update(3, queue="Misc")  # the installation's own sample ticket: not ours
            self.inbound, self.queues = "Raw", ["Billing", "Hardware", "Technical Support", "Misc"]
            self.priorities = ["2 low", "3 normal", "4 high"]
            self.fake: Any = self.znuny
        else:
            self.zammad = FakeZammad(es=False, token=TOKEN)
            self.inbound, self.queues = "Users", ["Sales", "Service Desk", "Billing"]
            self.priorities = ["1 low", "2 normal", "3 high"]
            self.fake = self.zammad

    @contextmanager
    def served(self, faults: Faulty | None = None) -> Iterator[str]:
        """The fake (or the fault wrapper around it) on a loopback port."""
        if faults is None and self.flavour == "zammad":
            faults = Faulty(self.fake, flavour="zammad", rate=0.0)  # its tuple answers, adapted for serve()
        with serve(faults if faults is not None else self.fake, self.lock) as url:
            yield url

    def add_ticket(self, subject: str, body: str) -> int:
        with self.lock:
            if self.flavour == "znuny":
                return self.znuny.add_customer_ticket(subject, body)
            return self.zammad.create_ticket(subject, body, group=self.inbound)

    def queue_of(self, tid: int) -> str:
        with self.lock:
            return self.znuny.queue_name(tid) if self.flavour == "znuny" else self.zammad.group_of(tid)

    def notes(self, tid: int) -> int:
        """Internal notes the daemon wrote on the ticket."""
        with self.lock:
            if self.flavour == "znuny":
                articles = [a.fields.get("Body", "") for a in self.znuny.ticket(tid).articles]
            else:
                articles = [a["body"] for a in list(self.zammad.articles.values()) if a["ticket_id"] == tid]
        return sum(1 for body in articles if str(body).startswith("ticketd "))

    def writes(self, tid: int) -> int:
        """Field changes and articles after creation: at most a queue move, a priority change and a note."""
        with self.lock:
            return self.znuny.writes(tid) if self.flavour == "znuny" else self.zammad.writes[tid]

    def config(self, tmp_path: Path, url: str, store: Path, *, log_level: str = "info", **routing: Any) -> Path:
        """Every model label routed (threshold 0), so each ticket gets exactly one write-back."""
        model_queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
        model_priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
        labels = {
            "queue": {
                "map": {q: self.queues[i % len(self.queues)] for i, q in enumerate(model_queues)},
                "threshold": 0,
            },
            "priority": {
                "map": {p: self.priorities[i % len(self.priorities)] for i, p in enumerate(model_priorities)},
                "threshold": 0,
            },
        }
        entry: dict[str, Any]
        if self.flavour == "znuny":
            entry = {
                "type": "znuny",
                "url": url,
                "user": "agent1",
                "password": "${TEST_ZNUNY_PASSWORD}",
                "inbound_queues": [self.inbound],
                "queues": self.queues,
            }
        else:
            entry = {"type": "zammad", "url": url, "token": "${TEST_ZAMMAD_TOKEN}", "inbound_groups": [self.inbound]}
        entry |= {
            "name": "fake",
            "routing": {"poll_interval": 0.2, "jitter": 0, "batch_limit": 5, "labels": labels, **routing},
        }
        config = {
            "model": {"store": str(store)},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
            "retrain": {"enabled": False},
            "api": {"enabled": False},
            "log": {"level": log_level, "json": True},
            "connectors": [entry],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


def routed_count(log: Path) -> int:
    return sum(1 for e in events(log) if e["event"] == "ticket routed") if log.exists() else 0
