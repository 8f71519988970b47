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


def test_every_line_a_daemon_run_writes_is_json(tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path) -> None:
    """Off a terminal: polls, API calls (uvicorn), a helpdesk outage, a reload and the stop are one JSON stream."""
    import httpx

    from tests.servers import free_port

    znuny, url = fake
    port = free_port()
    config = write_config(tmp_path, url, store, recover_after=0)
    data = yaml.safe_load(config.read_text())
    data["api"] = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": ["api-token-1"]}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    log = tmp_path / "daemon.log"
    proc = daemon(config, log=log)
    try:
        api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tid = znuny.add_customer_ticket(*SUBJECTS[0])
        body = {"ticket_data": "The VPN drops every few minutes"}
        assert httpx.post(f"{api}/api/v1/classify", json=body, timeout=10).status_code == 401
        auth = {"Authorization": "Bearer api-token-1"}
        assert httpx.post(f"{api}/api/v1/classify", json=body, headers=auth, timeout=10).status_code == 200
        assert httpx.get(f"{api}/docs", timeout=10).status_code == 200
        znuny.fail_next(2)  # an outage: a 500 and a dropped connection
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e["event"] == "connector recovered" for e in events(log)):
            time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e["event"] == "config reloaded" for e in events(log)):
            time.sleep(0.2)
        while time.monotonic() < deadline and ticketd_notes(znuny, tid) == 0:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]  # every single line: nothing printed around structlog
    names = [e["event"] for e in parsed]
    for expected in (
        "ticketd started",
        "api listening",
        "connector failing; backing off",
        "connector recovered",
        "config reloaded",
        "ticket routed",
        "ticketd stopped",
    ):
        assert expected in names, (expected, names)
    assert all({"event", "level", "timestamp"} <= e.keys() for e in parsed)
    assert "api-token-1" not in log.read_text(encoding="utf-8") and PASSWORD not in log.read_text(encoding="utf-8")


def test_a_locked_database_never_freezes_the_event_loop(
    tmp_path: Path, fake: tuple[FakeZnuny, str], store: Path
) -> None:
    """Another process holds SQLite's write lock while tickets arrive: /healthz keeps answering at once."""
    import sqlite3
    import threading

    import httpx

    from tests.servers import free_port

    znuny, url = fake
    port = free_port()
    config = write_config(tmp_path, url, store)
    data = yaml.safe_load(config.read_text())
    data["api"] = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": ["t"]}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    log = tmp_path / "daemon.log"
    proc = daemon(config, log=log)
    api = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(e["event"] == "api listening" for e in events(log)):
            time.sleep(0.2)
        locker = sqlite3.connect(tmp_path / "state.db", timeout=30, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # what a backup tool or a stuck second process would do
        held = threading.Event()
        try:
            ids = [znuny.add_customer_ticket(*SUBJECTS[i]) for i in range(3)]  # the pipeline now waits on the lock
            until = time.monotonic() + 12
            while time.monotonic() < until:
                started = time.monotonic()
                assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.25)
            held.set()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(znuny.queue_name(t) == "Raw" for t in ids):
            time.sleep(0.2)
        assert held.is_set() and all(znuny.queue_name(t) != "Raw" for t in ids)  # routed once the lock was gone
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    print(f"/healthz under a 12 s write lock: {len(latencies)} calls, max {max(latencies) * 1000:.0f} ms")
    assert len(latencies) >= 20  # each answered inside its 5 s timeout while the lock was held


def test_a_maildir_that_is_not_there_stops_its_connector_once_and_recovers_after_sighup(
    tmp_path: Path, store: Path
) -> None:
    """The configuration class against the real process: one line, not ready with the reason, no storm, recovery."""
    import httpx

    from tests.servers import free_port

    port = free_port()
    mail = tmp_path / "mail"
    mail.write_text("a file where the Maildir should be")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"store": str(store)},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                "retrain": {"enabled": False},
                "api": {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": ["t"]},
                "log": {"level": "info", "json": True},
                "connectors": [
                    {"type": "maildir", "name": "mail", "path": str(mail), "routing": {"poll_interval": 0.2}}
                ],
            }
        ),
        encoding="utf-8",
    )
    log = tmp_path / "daemon.log"
    proc = daemon(config, log=log)
    api = f"http://127.0.0.1:{port}"

    def readyz() -> tuple[int, dict[str, Any]]:
        try:
            answer = httpx.get(f"{api}/readyz", timeout=2)
        except httpx.HTTPError:
            return 0, {}
        return answer.status_code, answer.json()

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and readyz()[0] != 503:
            time.sleep(0.2)
        time.sleep(3)  # 15 poll intervals: a storm would show as 15 lines
        status, body = readyz()
        connector = body["details"]["connectors"]["mail"]
        assert status == 503 and connector["failure"] == "configuration" and not connector["ready"]
        assert "is not a Maildir" in connector["reason"] and str(mail) in connector["reason"]
        stopped = [e for e in events(log) if "configuration error" in e["event"]]
        assert len(stopped) == 1 and stopped[0]["connector"] == "mail"
        mail.unlink()
        for sub in ("cur", "new", "tmp"):
            (mail / sub).mkdir(parents=True)
        proc.send_signal(signal.SIGHUP)  # fixed, then reloaded
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and readyz()[0] != 200:
            time.sleep(0.2)
        assert readyz()[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text(encoding="utf-8")
