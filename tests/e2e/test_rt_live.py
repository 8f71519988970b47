"""`ticketd run`, `check` and `report` as separate processes against the suite's real Request Tracker 5.

New tickets go into an inbound queue of their own; `run --once` routes every one with exactly one private
comment, a second run writes nothing, a ticket a person moved first is left alone, and `check` says what it
verified on the live server (or names the config key that is wrong).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.backends.rt_live import RTHarness
from tests.support.daemon import ROOT, SUBJECTS, TARGETS, daemon, events, every_label, write_config
from tests.support.servers.rt import NO_CREATE_QUEUE, RTServer

pytestmark = [pytest.mark.slow, pytest.mark.rt]
TICKETS = 20
PRIORITIES = ["Low", "Medium", "High"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _config(tmp_path: Path, human: RTHarness, store: Path, **connection: Any) -> Path:
    """The suite's daemon config with its one connector made an `rt` one on this harness's inbound queue."""
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    path = write_config(tmp_path, human.server.url, store, batch_limit=50)
    config = yaml.safe_load(path.read_text())
    entry = config["connectors"][0]
    for key in ("user", "password", "inbound_queues", "queues", "url"):
        entry.pop(key)
    entry.update({k: v for k, v in human.settings().items() if k != "queues"})
    entry["queues"] = TARGETS
    entry["routing"]["labels"] = every_label(queues, priorities, TARGETS, PRIORITIES)
    entry.update(connection)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_run_once_routes_every_ticket_once_then_writes_nothing(
    tmp_path: Path, rt_server: RTServer, store: Path
) -> None:
    human = RTHarness(rt_server, token=False)  # user and password: ticketd rides RT's web session
    ids = [human.add_ticket(*SUBJECTS[i % len(SUBJECTS)]) for i in range(TICKETS)]
    moved = human.add_ticket("Printer jam", "Tray 2 jams on every page.")
    human.human_move(moved, "Hardware")  # a person got there first: ticketd must leave it alone
    config = _config(tmp_path, human, store)
    log = tmp_path / "daemon.log"
    first = daemon(config, "--once", log=log)
    assert first.wait(timeout=300) == 0, log.read_text()
    assert [t for t in ids if human.queue_of(t) == human.inbound] == []
    assert {t: human.queue_of(t) in TARGETS for t in ids} == dict.fromkeys(ids, True)
    assert {t: human.comments(t) for t in ids} == dict.fromkeys(ids, 1)
    writes = {t: human.writes(t) for t in ids}
    routed = sorted(e["ticket_id"] for e in events(log) if e["event"] == "ticket routed")
    assert routed == sorted(ids)
    assert human.queue_of(moved) == "Hardware" and human.writes(moved) == 0

    second = daemon(config, "--once", log=tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()
    assert {t: human.writes(t) for t in ids} == writes
    assert not [e for e in events(tmp_path / "second.log") if e["event"] == "ticket routed"]
    text = log.read_text(encoding="utf-8")
    assert rt_server.agent_password not in text and "refund" not in text

    checked = _cli("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    verified = "REST 2 as user 'ticketd' (on a web session); queues verified: 1 inbound, 4 to route into"
    assert verified in checked.stdout
    assert "ShowTicket, ModifyTicket and CommentOnTicket seen on ticket" in checked.stdout
    assert "priorities verified by search:" in checked.stdout


def test_comments_are_private_no_mail_goes_to_the_requestor(tmp_path: Path, rt_server: RTServer, store: Path) -> None:
    human = RTHarness(rt_server)
    tid = human.add_ticket("Refund please", "Please refund order 4711, it was charged twice.")
    before = rt_server.mail_log.read_text(errors="replace") if rt_server.mail_log.exists() else ""
    config = _config(tmp_path, human, store)
    log = tmp_path / "daemon.log"
    assert daemon(config, "--once", log=log).wait(timeout=300) == 0, log.read_text()
    assert human.comments(tid) == 1
    after = rt_server.mail_log.read_text(errors="replace") if rt_server.mail_log.exists() else ""
    assert "customer@ticketd.test" not in after[len(before) :]  # RT mailed nobody outside for ticketd's work


def test_check_names_what_is_wrong_on_the_live_rt(tmp_path: Path, rt_server: RTServer, store: Path) -> None:
    human = RTHarness(rt_server)
    human.add_ticket("Anchor", "a ticket for the rights check")
    cases = [
        ({"queues": [*TARGETS, "Biling"]}, "RT shows this agent no queue 'Biling' (in 'queues')"),
        ({"inbound_queues": ["Nope"]}, "RT shows this agent no queue 'Nope' (in 'inbound_queues')"),
        ({"queues": [*TARGETS, NO_CREATE_QUEUE]}, f"the agent lacks CreateTicket on queue(s) '{NO_CREATE_QUEUE}'"),
        (
            {"priorities": {"Low": 0, "Medium": 50, "Urgent": 100}},
            "RT does not know priority 'Urgent': 100 (in 'priorities')",
        ),
    ]
    for i, (change, expected) in enumerate(cases):
        where = tmp_path / str(i)
        where.mkdir()
        config = _config(where, human, store, **change)
        if "priorities" in change:  # the routing's names must still be the connector's
            data = yaml.safe_load(config.read_text())
            labels = data["connectors"][0]["routing"]["labels"]["priority"]["map"]
            labels.update({k: "Urgent" if v == "High" else v for k, v in labels.items()})
            config.write_text(yaml.safe_dump(data))
        checked = _cli("check", "--config", str(config))
        assert checked.returncode == 1, checked.stdout
        assert expected in checked.stdout, checked.stdout
        assert "Traceback" not in checked.stdout + checked.stderr


def test_a_rejected_token_stops_the_run_naming_the_connector(tmp_path: Path, rt_server: RTServer, store: Path) -> None:
    human = RTHarness(rt_server)
    config = _config(tmp_path, human, store, token="1-99-0123456789abcdef0123456789abcdef")
    done = _cli("run", "--once", "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert "connector 'fake' stopped: credentials rejected: " in done.stderr
    assert "Traceback" not in done.stderr and "0123456789abcdef0123456789abcdef" not in done.stderr + done.stdout
