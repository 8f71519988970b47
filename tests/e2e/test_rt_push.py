"""deploy/rt's scrip (ticketd-push.pl) pushing to `ticketd run`, end to end, on the suite's real RT 5.

The shipped initialdata file is loaded into the session's RT exactly as deploy/rt/README.md says
(`rt-setup-database-5 --action insert` with TICKETD_HOOK_URL and a fresh TICKETD_PUSH_SECRET) and removed again
after the test, so no other test's ticket creation meets a scrip. ticketd runs as a separate process with push on
and its polling slowed to an hour after the first poll, so a ticket created through REST 2 afterwards can only be
routed because RT's scrip pushed it. The scrip posts to a relay in this process that hands each request on to
ticketd unchanged and keeps a copy, so the very bytes RT sent can be checked and sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import signal
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.backends.rt_live import RTHarness
from tests.support.daemon import API_TOKEN, daemon, events, every_label, readyz, write_config
from tests.support.paths import ROOT
from tests.support.servers import free_port
from tests.support.servers.rt import RT_LIB, RTError, RTServer

pytestmark = [pytest.mark.slow, pytest.mark.rt]
SHIPPED = ROOT / "deploy" / "rt" / "ticketd-push.pl"
DESCRIPTION = "ticketd push"  # the scrip's description in the shipped file
CONNECTOR = "rt"  # the hook URL's last part: /api/v1/hooks/rt
RTNAME = "ticketd-test"  # the suite's RT (tests/support/servers/rt.py): X-Ticketd-Delivery is <rtname>-<txn>
# The scrips of one description, as JSON (stage, condition, action, code); with a second argument, deleted after.
_SCRIPS = """
use strict; use warnings;
use RT; RT::LoadConfig(); RT::Init();
use JSON::PP;
my ($description, $delete) = @ARGV;
my $scrips = RT::Scrips->new(RT->SystemUser);
$scrips->Limit(FIELD => 'Description', VALUE => $description);
$scrips->FindAllRows;
my @found;
for my $scrip (@{ $scrips->ItemsArrayRef }) {
    my $global = $scrip->IsGlobal;
    push @found, {
        id => $scrip->id, disabled => $scrip->Disabled ? 1 : 0, stage => $global ? $global->Stage : undef,
        condition => $scrip->ScripConditionObj->Name, action => $scrip->ScripActionObj->Name,
        template => $scrip->Template, code => $scrip->CustomCommitCode,
    };
    next unless $delete;
    my ($ok, $msg) = $scrip->Delete;
    die "scrip " . $scrip->id . ": $msg\\n" unless $ok;
}
print JSON::PP->new->canonical->encode(\\@found), "\\n";
"""


def scrips(server: RTServer, *, delete: bool = False) -> list[dict[str, Any]]:
    """The shipped scrip(s) in RT's database, through RT's own Perl API; `delete` removes them too."""
    out = _perl(server, _SCRIPS, DESCRIPTION, *(["delete"] if delete else []))
    found: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return found


def _perl(server: RTServer, script: str, *args: str) -> str:
    """A Perl script on RT's own API, with the server's site config."""
    done = subprocess.run(
        ["perl", "-I", RT_LIB, "-e", script, *args],
        cwd=server.root,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def load(server: RTServer, url: str, secret: str, **extra: str) -> str:
    """README's command: the shipped file with ticketd's hook URL and the push secret in the environment."""
    return server.insert(SHIPPED, env={"TICKETD_HOOK_URL": url, "TICKETD_PUSH_SECRET": secret, **extra})


@dataclass
class Relay:
    """Hands each POST on to `target` unchanged and keeps (arrival time, headers, body, ticketd's status)."""

    target: str = ""
    seen: list[tuple[float, dict[str, str], bytes, int]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = httpx.post(relay.target + self.path, content=body, headers=headers, timeout=5)
                    status, reply = answer.status_code, answer.content
                except httpx.HTTPError:
                    status, reply = 502, b"{}"
                relay.seen.append((arrived, dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Closes the port: RT's scrip then meets a refused connection, as with a stopped ticketd."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def pushes(self, ticket_id: str) -> list[tuple[float, dict[str, str], bytes, int]]:
        return [p for p in self.seen if json.loads(p[2]).get("ticket") == ticket_id]


@dataclass
class Pushing:
    server: RTServer
    api: str
    api_section: dict[str, Any]
    secret: str
    relay: Relay
    created_without_scrip: list[float]


def _create(harness: RTHarness, subject: str, body: str, queue: str | None = None) -> tuple[str, float, float]:
    """A ticket through REST 2 as the human: (id, when the call returned, how long it took)."""
    started = time.monotonic()
    tid = harness.add_ticket(subject, body, queue=queue)
    done = time.monotonic()
    return tid, done, done - started


@pytest.fixture
def harness(rt_server: RTServer) -> RTHarness:
    # An inbound queue of its own; the agent logs in with user and password, so ticketd rides RT's web session
    # (one bcrypt per session instead of one per REST call).
    return RTHarness(rt_server, token=False)


@pytest.fixture
def pushing(rt_server: RTServer, harness: RTHarness) -> Iterator[Pushing]:
    """The shipped scrip loaded (pointing at a relay in front of ticketd's port); deleted again after the test."""
    assert scrips(rt_server) == [], "a scrip 'ticketd push' is left over from an earlier test"
    # Ticket creation before the scrip exists: the baseline for what the scrip adds to it.
    elsewhere = rt_server.new_queue("Baseline")  # not an inbound queue: ticketd must not route these
    baseline = [_create(harness, f"Baseline {i}", "No scrip yet.", queue=elsewhere)[2] for i in range(3)]
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    relay = Relay(target=api)
    relay.start()
    secret = secrets.token_hex(32)
    try:
        output = load(rt_server, f"http://127.0.0.1:{relay.port}/api/v1/hooks/{CONNECTOR}", secret)
        assert f"Creating scrip '{DESCRIPTION}'" in output and secret not in output, output
        api_section = {"enabled": True, "host": "127.0.0.1", "port": port, "tokens": [API_TOKEN]}
        yield Pushing(rt_server, api, api_section, secret, relay, baseline)
    finally:
        relay.stop()
        scrips(rt_server, delete=True)
        assert scrips(rt_server) == []  # no later test's ticket creation meets the scrip


class Watch:
    """The ticket's queue, read straight from RT's SQLite file every 20 ms (REST would take RT's two workers)."""

    def __init__(self, server: RTServer, inbound: str) -> None:
        self.db = sqlite3.connect(f"file:{server.root / 'rt5.db'}?mode=ro", uri=True, timeout=10)
        row = self.db.execute("SELECT id FROM Queues WHERE Name = ?", (inbound,)).fetchone()
        assert row is not None, inbound
        self.inbound = int(row[0])

    def left_inbound(self, ticket_id: str, timeout: float, log: Path) -> float:
        """When the ticket left the inbound queue (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.db.execute("SELECT Queue FROM Tickets WHERE id = ?", (int(ticket_id),)).fetchone()
            now = time.monotonic()
            if row is not None and int(row[0]) != self.inbound:
                return now
            if now > deadline:
                pytest.fail(f"ticket {ticket_id} not routed within {timeout} s; daemon log:\n{_tail(log)}")
            time.sleep(0.02)

    def close(self) -> None:
        self.db.close()


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8")[-3000:]


def _wait(what: str, done: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; daemon log:\n{_tail(log)}")
        time.sleep(0.1)


def _metric(api: str, line: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=5).text
    found = [row for row in text.splitlines() if row.startswith(line + " ")]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def _first_poll_done(api: str) -> bool:
    status, body = readyz(api)
    connector = body.get("details", {}).get("connectors", {}).get(CONNECTOR, {}) if status else {}
    return bool(connector.get("last_success")) and connector.get("mode") == "push"


def _create_transaction(harness: RTHarness, ticket_id: str) -> str:
    return next(str(t["id"]) for t in harness.history(ticket_id) if t["Type"] == "Create")


def _config(tmp_path: Path, pushing: Pushing, harness: RTHarness, store: Path) -> Path:
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    connection = {**harness.settings(push_secret=pushing.secret), "name": CONNECTOR}
    config = write_config(
        tmp_path,
        pushing.server.url,
        store,
        connection=connection,
        poll_interval=3600,
        push={"enabled": True, "poll_interval": 3600},
        labels=every_label(queues, priorities, connection["queues"], ["Low", "Medium", "High"]),
    )
    data = yaml.safe_load(config.read_text())
    entry = data["connectors"][0]
    assert entry["user"] == harness.server.agent  # the harness's RT login, over write_config's Znuny one
    data["api"] = pushing.api_section
    config.write_text(yaml.safe_dump(data))
    return config


def test_rt_pushes_a_new_ticket_and_ticketd_routes_it_once(
    tmp_path: Path, pushing: Pushing, harness: RTHarness, store: Path
) -> None:
    server, api, relay = pushing.server, pushing.api, pushing.relay
    log = tmp_path / "daemon.log"
    watch = Watch(server, harness.inbound)
    proc = daemon(_config(tmp_path, pushing, harness, store), log=log)
    try:
        _wait("ticketd's first poll", lambda: _first_poll_done(api), 120, log)

        first, created, took_first = _create(harness, "Invoice charged twice", "We were billed twice, please refund.")
        latency = watch.left_inbound(first, 30, log) - created
        print(f"\nRT push: ticket {first} routed {latency:.3f} s after its create call returned")
        assert latency < 5, f"routed {latency:.2f} s after creation (expected about half a second)"
        _wait(f"ticketd's comment on ticket {first}", lambda: harness.comments(first) == 1, 30, log)

        # What RT's scrip sent: one POST, the documented body, signed, delivery <rtname>-<Create transaction>.
        _wait("the relay's copy of the push", lambda: bool(relay.pushes(first)), 10, log)
        [(_, headers, body, status)] = relay.pushes(first)
        assert status == 202
        assert body == json.dumps({"ticket": first, "queue": harness.inbound}, separators=(",", ":")).encode()
        signed = "sha256=" + hmac.new(pushing.secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Ticketd-Signature"] == signed
        assert headers["X-Ticketd-Delivery"] == f"{RTNAME}-{_create_transaction(harness, first)}"
        assert headers["Content-Type"] == "application/json"
        writes = harness.writes(first)

        # The same push again, byte for byte: accepted (the signature is good) and written nowhere.
        hook = f"{api}/api/v1/hooks/{CONNECTOR}"
        sent_again = {k: headers[k] for k in ("Content-Type", "X-Ticketd-Signature", "X-Ticketd-Delivery")}
        assert httpx.post(hook, content=body, headers=sent_again, timeout=10).status_code == 202
        # Signed with another secret: refused and counted.
        forged = {**sent_again, "X-Ticketd-Signature": "sha256=" + hmac.new(b"x" * 32, body, "sha256").hexdigest()}
        refused = httpx.post(hook, content=body, headers=forged, timeout=10)
        assert refused.status_code == 401, refused.text

        second, created, took_second = _create(harness, "VPN keeps dropping", "The VPN disconnects every few minutes.")
        latency_second = watch.left_inbound(second, 30, log) - created
        print(f"RT push: ticket {second} routed {latency_second:.3f} s after its create call returned")
        _wait(f"ticketd's comment on ticket {second}", lambda: harness.comments(second) == 1, 30, log)

        pushes = f'ticketd_pushes_total{{connector="{CONNECTOR}",result='
        assert _metric(api, pushes + '"accepted"}') == 3  # two from RT, one sent again
        assert _metric(api, pushes + '"rejected"}') == 1
        assert _metric(api, f'ticketd_push_to_writeback_seconds_count{{connector="{CONNECTOR}"}}') == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, _tail(log)
        watch.close()
    # With ticketd gone, nothing can still be on its way: the push sent again wrote nothing.
    assert harness.writes(first) == writes and harness.comments(first) == 1
    assert harness.comments(second) == 1
    routed = [e["ticket_id"] for e in events(log) if e["event"] == "ticket routed"]
    assert sorted(routed) == sorted([first, second])
    text = log.read_text(encoding="utf-8")
    assert pushing.secret not in text and "refund" not in text

    # ticketd down and the port closed: creating a ticket still works, about as fast, and RT logs why (no secret).
    relay.stop()
    down = [_create(harness, f"While ticketd is down {i}", "Nobody listens.") for i in range(3)]
    took_down = [d[2] for d in down]
    baseline = statistics.median(pushing.created_without_scrip)
    print(
        f"REST ticket create: {baseline:.3f} s without the scrip (median of 3), {took_first:.3f} and "
        f"{took_second:.3f} s pushing to ticketd, {statistics.median(took_down):.3f} s with the port closed "
        f"(median of 3: {', '.join(f'{t:.3f}' for t in took_down)})"
    )
    assert statistics.median(took_down) < baseline + 1.0  # a refused connection costs milliseconds
    rt_log = server.log_tail(200_000)
    for tid, _, _ in down:
        assert f"ticketd push of ticket #{tid} to http://127.0.0.1:{relay.port}/api/v1/hooks/{CONNECTOR}" in rt_log
        assert harness.queue_of(tid) == harness.inbound and harness.history(tid)  # created, left to the poll
    assert "Connection refused" in rt_log and pushing.secret not in rt_log


def test_loading_checks_its_settings_and_a_second_load_replaces_the_first(rt_server: RTServer) -> None:
    secret = secrets.token_hex(16)
    url = f"http://127.0.0.1:{free_port()}/api/v1/hooks/{CONNECTOR}"
    refused = {
        "TICKETD_HOOK_URL is not set": {"TICKETD_PUSH_SECRET": secret},
        "must be an http:// or https:// URL": {
            "TICKETD_HOOK_URL": "ftp://ticketd/hooks",
            "TICKETD_PUSH_SECRET": secret,
        },
        "without user or password": {"TICKETD_HOOK_URL": "https://u:p@ticketd/x", "TICKETD_PUSH_SECRET": secret},
        "TICKETD_PUSH_SECRET is not set": {"TICKETD_HOOK_URL": url},
        "16 to 256 printable ASCII": {"TICKETD_HOOK_URL": url, "TICKETD_PUSH_SECRET": "short"},
        "TICKETD_PUSH_TIMEOUT must be": {
            "TICKETD_HOOK_URL": url,
            "TICKETD_PUSH_SECRET": secret,
            "TICKETD_PUSH_TIMEOUT": "0",
        },
    }
    for message, env in refused.items():
        with pytest.raises(RTError, match=message) as raised:
            rt_server.insert(SHIPPED, env={"TICKETD_HOOK_URL": "", "TICKETD_PUSH_SECRET": "", **env})
        assert "nothing was loaded" in str(raised.value) and secret not in str(raised.value)
    assert scrips(rt_server) == []

    try:
        load(rt_server, url, secret)
        [made] = scrips(rt_server)
        assert (made["stage"], made["condition"], made["action"], made["disabled"]) == (
            "TransactionBatch",
            "On Create",
            "User Defined",
            0,
        )
        assert url in made["code"] and "my $timeout = 2;" in made["code"]
        # Loaded again (a new secret, another URL, a timeout): the same scrip, new code, enabled again.
        _perl(rt_server, _DISABLE, str(made["id"]))
        assert scrips(rt_server)[0]["disabled"] == 1
        other, new_secret = url.replace("/hooks/rt", "/hooks/rt-2"), secrets.token_hex(16)
        output = load(rt_server, other, new_secret, TICKETD_PUSH_TIMEOUT="0.5")
        assert f"Updated scrip #{made['id']}" in output, output
        [updated] = scrips(rt_server)
        assert updated["id"] == made["id"] and updated["disabled"] == 0
        assert other in updated["code"] and new_secret in updated["code"] and secret not in updated["code"]
        assert "my $timeout = 0.5;" in updated["code"]
    finally:
        scrips(rt_server, delete=True)
    assert scrips(rt_server) == []


_DISABLE = """
use strict; use warnings;
use RT; RT::LoadConfig(); RT::Init();
my $scrip = RT::Scrip->new(RT->SystemUser);
$scrip->Load($ARGV[0]) or die "no scrip $ARGV[0]\\n";
my ($ok, $msg) = $scrip->SetDisabled(1);
die "$msg\\n" unless $ok;
"""
