"""Znuny's own TicketCreate invoker (deploy/znuny/ticketd-webservice.yml) pushing to `ticketd run`, end to end.

The suite's real Znuny 7.1.7 gets the shipped web service with only its two placeholders filled in (ticketd's
URL and the push token, as deploy/znuny/README.md says) and runs its own daemon (bin/znuny.Daemon.pl), whose
scheduler sends the invoker's asynchronous requests. ticketd runs as a separate process with push on and its
polling slowed to an hour after the first poll, so a ticket created through Znuny's REST API afterwards can
only be routed because Znuny pushed it.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import znuny_live as live
from tests.support.daemon import API_TOKEN, daemon, events, readyz, write_config
from tests.support.servers import free_port
from tests.support.servers.znuny import ZnunyServer
from tests.support.znuny_live import WEBSERVICE, render

pytestmark = [pytest.mark.slow, pytest.mark.znuny]
CONNECTOR = "znuny"  # the controller's last part, /api/v1/hooks/znuny, as shipped
INVOKER = "TicketCreated"
# What Znuny's scheduler does with the invoker's task: Requester->Run (a second, identical push).
INVOKE_AGAIN = """
my ($WebserviceID, $TicketID) = @ARGV;
my $Result = $Kernel::OM->Get('Kernel::GenericInterface::Requester')->Run(
    WebserviceID => $WebserviceID, Invoker => 'INVOKER', Asynchronous => 1,
    Data => { TicketID => $TicketID + 0, Event => 'TicketCreate' },
);
die 'invoker failed: ' . ( $Result->{ErrorMessage} // '?' ) . "\\n" if !$Result->{Success};
""".replace("INVOKER", INVOKER)


@dataclass
class Pushing:
    server: ZnunyServer
    api_section: dict[str, Any]
    api: str
    token: str
    webservice_id: str


@pytest.fixture
def pushing(znuny_server: ZnunyServer) -> Iterator[Pushing]:
    """Web service `ticketd` replaced by the rendered shipped file and Znuny's daemon running; both undone after."""
    server = znuny_server
    port = free_port()
    api_section = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [API_TOKEN]}
    setup = Pushing(server, api_section, f"http://127.0.0.1:{port}", secrets.token_hex(16), "")
    setup.webservice_id = server.psql(f"SELECT id FROM gi_webservice_config WHERE name = '{WEBSERVICE}'").strip()
    assert setup.webservice_id.isdigit(), setup.webservice_id
    imports = server.root / "webservices"
    rendered = imports / "ticketd-push.yml"
    rendered.write_text(render(setup.api, setup.token), encoding="utf-8")
    rendered.chmod(0o644)
    server.console("Admin::WebService::Update", "--webservice-id", setup.webservice_id, "--source-path", str(rendered))
    # Every ticket the suite created so far queued one task for the invoker, and no daemon ran them; they
    # are not this test's pushes.
    server.psql(f"DELETE FROM scheduler_task WHERE task_type = 'GenericInterface' AND name = 'Invoker-{INVOKER}'")
    server.start_daemon()
    try:
        yield setup
    finally:
        server.stop_daemon()
        shipped = imports / f"{WEBSERVICE}.yml"  # the suite's own copy of the shipped file
        server.console(
            "Admin::WebService::Update", "--webservice-id", setup.webservice_id, "--source-path", str(shipped)
        )
        rendered.unlink()


def _wait(what: str, done: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; daemon log:\n{log.read_text(encoding='utf-8')[-3000:]}")
        time.sleep(0.1)


def _metric(api: str, line: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=5).text
    found = [row for row in text.splitlines() if row.startswith(line + " ")]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def _first_poll_done(api: str) -> bool:
    status, body = readyz(api)
    return bool(status and body.get("details", {}).get("connectors", {}).get(CONNECTOR, {}).get("last_success"))


def test_znuny_pushes_a_new_ticket_and_ticketd_routes_it_once(tmp_path: Path, pushing: Pushing, store: Path) -> None:
    server, api = pushing.server, pushing.api
    inbox = live.inbox(server)
    human = live.human(server)
    connection = live.connection(server, WEBSERVICE, inbox, name=CONNECTOR, push_token=pushing.token)
    config = write_config(
        tmp_path,
        server.url,
        store,
        connection=connection,
        poll_interval=3600,
        push={"enabled": True, "poll_interval": 3600},
    )
    data = yaml.safe_load(config.read_text())
    data["api"] = pushing.api_section
    config.write_text(yaml.safe_dump(data))
    log = tmp_path / "daemon.log"
    proc = daemon(config, log=log)
    try:
        _wait("ticketd's first poll", lambda: _first_poll_done(api), 120, log)

        first = human.add_ticket("Invoice charged twice", "We were billed twice for March, please refund.", inbox)
        _wait(f"ticket {first} routed by Znuny's push", lambda: human.queue_of(first) != inbox, 30, log)
        assert human.notes(first) == 1
        writes = human.writes(first)

        server.perl(INVOKE_AGAIN, pushing.webservice_id, first)  # the same push again, sent by Znuny
        # Pushed ids are routed one at a time in arrival order: once the next ticket is routed, the
        # repeated push has been handled too.
        second = human.add_ticket("VPN keeps dropping", "The VPN disconnects every few minutes.", inbox)
        _wait(f"ticket {second} routed by Znuny's push", lambda: human.queue_of(second) != inbox, 30, log)
        assert human.writes(first) == writes and human.notes(first) == 1
        assert human.notes(second) == 1

        pushes = f'ticketd_pushes_total{{connector="{CONNECTOR}",result='
        assert _metric(api, pushes + '"accepted"}') == 3
        assert _metric(api, pushes + '"rejected"}') == 0
        assert _metric(api, f'ticketd_push_to_writeback_seconds_count{{connector="{CONNECTOR}"}}') == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(encoding="utf-8")[-3000:]
    routed = [e["ticket_id"] for e in events(log) if e["event"] == "ticket routed"]
    assert sorted(routed) == sorted([first, second])
    text = log.read_text(encoding="utf-8")
    assert pushing.token not in text and "refund" not in text
