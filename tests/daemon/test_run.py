"""`ticketd run` as a separate process against the fake Znuny on a real port, with a tiny trained model.

Proves the daemon's promises end to end: new tickets routed, SIGKILL at any moment loses and doubles
nothing, SIGTERM exits cleanly, and no secret reaches the logs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.http import serve
from tests.fakes.znuny import FakeZnuny

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-agent-password"
ZAMMAD_TOKEN = "zammad-reliability-token"
SUBJECTS = [
    ("Invoice charged twice", "We were billed twice for March, please refund."),
    ("VPN keeps dropping", "The VPN disconnects every few minutes since the update."),
    ("Need a quote", "Please send an offer for 30 more licences."),
    ("Laptop screen broken", "My screen flickers and then goes black."),
    ("Payment failed", "The card payment failed although the card is valid."),
    ("Password reset", "I cannot reset my password, the link expired."),
]


@pytest.fixture
def fake() -> Iterator[tuple[FakeZnuny, str]]:
    znuny = FakeZnuny(passwords={"agent1": PASSWORD})
    znuny.agent_update(3, queue="Misc")  # the installation's own new ticket: not part of these tests
    with serve(znuny) as url:
        yield znuny, url


def write_config(
    tmp_path: Path, url: str, store: Path, *, connection: dict[str, Any] | None = None, **routing: Any
) -> Path:
    """Every model label routed (threshold 0) into the fake's queues, so each ticket gets exactly one write."""
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    targets = ["Billing", "Hardware", "Technical Support", "Misc"]
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "log": {"level": "info", "json": True},
        "connectors": [
            {
                "type": "znuny",
                "name": "fake",
                "url": url,
                "user": "agent1",
                "password": "${TEST_ZNUNY_PASSWORD}",
                "inbound_queues": ["Raw"],
                "queues": targets,
                "routing": {
                    "poll_interval": 0.2,
                    "jitter": 0,
                    "batch_limit": 5,
                    "labels": {
                        "queue": {"map": {q: targets[i % 4] for i, q in enumerate(queues)}, "threshold": 0},
                        "priority": {
                            "map": {p: ["2 low", "3 normal", "4 high"][i % 3] for i, p in enumerate(priorities)},
                            "threshold": 0,
                        },
                    },
                    **routing,
                },
                **(connection or {}),
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def daemon(config: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEST_ZNUNY_PASSWORD": PASSWORD, "TEST_ZAMMAD_TOKEN": ZAMMAD_TOKEN, "HF_HUB_OFFLINE": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config), *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def ticketd_notes(znuny: FakeZnuny, tid: int) -> int:
    return sum(1 for a in znuny.ticket(tid).articles if str(a.fields.get("Body", "")).startswith("ticketd "))


def test_run_once_routes_every_new_ticket_and_logs_no_secret(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path
) -> None:
    znuny, url = fake
    ids = [znuny.add_customer_ticket(s, b) for s, b in SUBJECTS]
    log = tmp_path / "daemon.log"
    proc = daemon(write_config(tmp_path, url, store), "--once", log=log)
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert [znuny.queue_name(t) for t in ids if znuny.queue_name(t) == "Raw"] == []
    assert all(ticketd_notes(znuny, t) == 1 for t in ids)
    text = log.read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert "refund" not in text and "flickers" not in text  # ticket text stays out of logs
    routed = [e for e in events(log) if e["event"] == "ticket routed"]
    assert sorted(e["ticket_id"] for e in routed) == sorted(str(t) for t in ids)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path
) -> None:
    znuny, url = fake
    ids = [znuny.add_customer_ticket(*SUBJECTS[i % len(SUBJECTS)]) for i in range(40)]
    config = write_config(tmp_path, url, store)
    log = tmp_path / "daemon.log"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = daemon(config, log=log)
        time.sleep(rng.uniform(1.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    final = daemon(config, "--once", log=log)
    assert final.wait(timeout=120) == 0
    assert kills == 4
    left = [t for t in ids if znuny.queue_name(t) == "Raw"]
    doubled = {t: n for t in ids if (n := ticketd_notes(znuny, t)) != 1}
    assert left == [] and doubled == {}, f"lost {left}, doubled {doubled}"


def test_sigterm_exits_cleanly(tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path) -> None:
    znuny, url = fake
    log = tmp_path / "daemon.log"
    proc = daemon(write_config(tmp_path, url, store), log=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(e["event"] == "ticketd started" for e in events(log)):
        time.sleep(0.2)
    znuny.add_customer_ticket(*SUBJECTS[0])
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    names = [e["event"] for e in events(log)]
    assert "ticketd stopped" in names
    assert "Traceback" not in log.read_text(encoding="utf-8")
