"""`ticketd run`, `check` and `report` as separate processes against the suite's real Znuny 7.1.7.

Each web service an admin may import (the development sample, the release example, ticketd's own) gets
the same end-to-end run: new tickets in an inbound queue of their own, `run --once` routes every one with
exactly one internal note, a second run writes nothing, and `check` names the layout it found.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import znuny_live as live
from tests.support.daemon import ROOT, SUBJECTS, daemon, events, write_config
from tests.support.servers.znuny import ZnunyServer

pytestmark = [pytest.mark.slow, pytest.mark.znuny]
LAYOUTS = {
    "GenericTicketConnectorREST": "development sample layout (SessionCreate POST /Session, TicketSearch GET /Ticket",
    "GenericTicketConnectorREST-Release": "release example / ticketd layout (SessionCreate POST /Session, "
    "TicketSearch POST /Ticket/Search",
    "ticketd": "release example / ticketd layout (SessionCreate POST /Session, TicketSearch POST /Ticket/Search",
}
TICKETS = 20


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("webservice", list(LAYOUTS))
def test_run_once_routes_every_ticket_once_then_writes_nothing(
    tmp_path: Path, znuny_server: ZnunyServer, store: Path, webservice: str
) -> None:
    inbox = live.inbox(znuny_server)
    human = live.human(znuny_server)
    ids = [human.add_ticket(*SUBJECTS[i % len(SUBJECTS)], queue=inbox) for i in range(TICKETS)]
    config = write_config(
        tmp_path, znuny_server.url, store, connection=live.connection(znuny_server, webservice, inbox), batch_limit=50
    )
    log = tmp_path / "daemon.log"
    first = daemon(config, "--once", log=log)
    assert first.wait(timeout=300) == 0, log.read_text()
    assert [t for t in ids if human.queue_of(t) == inbox] == []
    assert {t: human.notes(t) for t in ids} == dict.fromkeys(ids, 1)
    writes = {t: human.writes(t) for t in ids}
    routed = sorted(e["ticket_id"] for e in events(log) if e["event"] == "ticket routed")
    assert routed == sorted(ids)

    second = daemon(config, "--once", log=tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()
    assert {t: human.writes(t) for t in ids} == writes
    assert not [e for e in events(tmp_path / "second.log") if e["event"] == "ticket routed"]
    text = log.read_text(encoding="utf-8")
    assert znuny_server.password not in text and "refund" not in text

    checked = _cli("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"web service {webservice!r}: {LAYOUTS[webservice]}" in checked.stdout
    assert "queue and priority names verified by search" in checked.stdout


def test_run_once_exits_nonzero_naming_a_connector_whose_login_was_rejected(
    tmp_path: Path, znuny_server: ZnunyServer, store: Path
) -> None:
    connection = live.connection(znuny_server, "ticketd", "Raw", password="not-the-password")
    config = write_config(tmp_path, znuny_server.url, store, connection=connection)
    done = _cli("run", "--once", "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert "connector 'fake' stopped: credentials rejected: " in done.stderr
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr + done.stdout


def test_unknown_web_service_is_a_configuration_error_naming_webservice_and_url(
    tmp_path: Path, znuny_server: ZnunyServer, store: Path
) -> None:
    connection = live.connection(znuny_server, "NoSuchWebservice", "Raw")
    config = write_config(tmp_path, znuny_server.url, store, connection=connection, timeout=8)
    done = _cli("run", "--once", "--config", str(config))
    assert done.returncode == 1, done.stderr
    url = f"{znuny_server.url}/znuny/nph-genericinterface.pl/Webservice/NoSuchWebservice"
    assert f"connector 'fake' stopped: configuration error: fake: webservice 'NoSuchWebservice': {url}" in done.stderr
    checked = _cli("check", "--config", str(config))
    assert checked.returncode == 1 and "ConfigError" in checked.stdout and "check 'webservice'" in checked.stdout


def test_check_names_a_queue_the_helpdesk_does_not_have(tmp_path: Path, znuny_server: ZnunyServer, store: Path) -> None:
    connection = live.connection(
        znuny_server, "ticketd", "Raw", queues=["Billing", "Hardware", "Technical Support", "Misc", "Biling"]
    )
    config = write_config(tmp_path, znuny_server.url, store, connection=connection)
    checked = _cli("check", "--config", str(config))
    assert checked.returncode == 1
    assert "the helpdesk has no queue 'Biling' (in 'queues')" in checked.stdout


def test_a_label_mapped_to_a_missing_queue_is_warned_once_counted_and_reported(
    tmp_path: Path, znuny_server: ZnunyServer, store: Path
) -> None:
    inbox = live.inbox(znuny_server)
    human = live.human(znuny_server)
    ids = [human.add_ticket(*SUBJECTS[i], queue=inbox) for i in range(3)]
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    labels = {"queue": {"map": dict.fromkeys(queues, "Sales"), "threshold": 0}}
    connection = live.connection(znuny_server, "ticketd", inbox)
    config = write_config(tmp_path, znuny_server.url, store, connection=connection, labels=labels)
    log = tmp_path / "daemon.log"
    assert daemon(config, "--once", log=log).wait(timeout=300) == 0, log.read_text()
    warned = [e for e in events(log) if e["event"].startswith("model label maps to a name the helpdesk does not")]
    assert [(e["level"], e["label"], e["target"]) for e in warned] == [("warning", "queue", "Sales")]
    assert all(human.queue_of(t) == inbox for t in ids)  # left for a person, never half-routed

    report = _cli("report", "--json", "--config", str(config))
    assert report.returncode == 0, report.stderr
    missing = json.loads(report.stdout.splitlines()[-1])["missing"]
    assert missing == [{"connector": "fake", "label": "queue", "target": "Sales", "tickets": 3}]
    checked = _cli("check", "--config", str(config))
    assert checked.returncode == 1
    assert "maps to 'Sales', which the helpdesk does not have (add it to connectors[fake].queues" in checked.stdout
