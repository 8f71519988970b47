"""Record a real Znuny 7.1.7's answers (release-example and ticketd web services) as replayable fixtures.

    .venv/bin/python -m tests.connectors.znuny.record OUTDIR

Starts its own Znuny with `start_znuny` in a temporary directory (as root, about 15 s), sends one
consistent history of requests, and writes `800-*.json` ... in the format of the 7.0.19 recordings
(../shared/fixtures/znuny-7.0.19/README.md, section 2). Requests are built by httpx (its headers,
its query encoding, its JSON) and sent on a raw socket, one connection per request, so the status
line, the header order and case, and the body bytes are captured exactly as the server sent them.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.support.paths import ZNUNY_WEBSERVICES
from tests.support.servers.znuny import ZnunyServer, start_znuny

RELEASE = "GenericTicketConnectorREST-Release"
TICKETD = "ticketd"
FIRST = 800
WRONG_PASSWORD = "WrongPassword"
CREATE_PAUSE_S = 1.1  # create_time has 1 s resolution: one second apart keeps Age sorting unambiguous


NOTES = {
    "release-session-create-ok": "Surprise: the release web service (KeepAlive '1') answers `Connection: Keep-Alive`, "
    "not `close` as the development sample does; there is no `Keep-Alive:` header (nph- script, Apache adds none).",
    "release-search-new-open-raw-age-up-limit": "The installer's ticket 1 (Raw, new) is the oldest hit.",
    "release-search-unknown-and-raw-queue": "Surprise: one unknown queue name empties the whole search, "
    "even though Raw has hits.",
    "release-search-unknown-and-known-priority": "Surprise: one unknown priority name empties the whole search.",
    "release-ticket-get-first-customer-article": "7.1.7 articles carry `CommunicationChannel` (the name) next to "
    "`CommunicationChannelID`; 7.0.19 had only the id.",
    "release-ticket-get-zero": "TicketID 0 is `TicketGet.MissingParameter` (0 is false in Perl), not AccessDenied.",
    "release-ticket-update-zero-empty": "TicketID 0 is `TicketUpdate.MissingParameter` "
    "'TicketID or TicketNumber is required!', not AccessDenied.",
    "release-dev-route-ticket-search-get": "Route errors (HTTP 500, text/plain) also say `Connection: Keep-Alive`.",
    "release-get-ticket-search": "Surprise: 7.1.7 checks ids: a non-numeric TicketID is `TicketGet.WrongStructure` "
    "'Invalid ticket ID parameter(s) found!' (7.0.19 said AccessDenied, its fixture 319).",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Status line + headers, then exactly Content-Length body bytes (or until close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body if length is None else body[:length]


class Recorder:
    def __init__(self, server: ZnunyServer, out: Path) -> None:
        self.server = server
        self.out = out
        self.number = FIRST
        self.secrets: dict[str, str] = {server.password: "<PASSWORD>"}
        self.names: list[str] = []

    def redact(self, text: str) -> str:
        for secret, placeholder in self.secrets.items():
            text = text.replace(secret, placeholder)
        return text

    def call(
        self,
        slug: str,
        description: str,
        webservice: str,
        method: str,
        route: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        notes: str | None = None,
    ) -> Any:
        notes = notes or NOTES.get(slug)
        url = self.server.base_url(webservice) + route
        with httpx.Client() as client:  # builds the request exactly as httpx sends it; the socket is ours
            request = client.build_request(method, url, params=params, json=body)
        raw_target = request.url.raw_path.decode("ascii")
        path, _, query = raw_target.partition("?")
        content = request.read()
        lines = [f"{method} {raw_target} HTTP/1.1"] + [f"{k}: {v}" for k, v in request.headers.multi_items()]
        wire = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content
        sent_at = _now()
        split = urlsplit(self.server.url)
        with socket.create_connection((split.hostname or "127.0.0.1", split.port or 80), timeout=60) as sock:
            sock.sendall(wire)
            head, body_bytes = _read_response(sock)
        head_lines = head.decode("latin-1").split("\r\n")
        version, status, reason = [*head_lines[0].split(" ", 2), "", ""][:3] if head else (None, None, None)
        resp_headers: dict[str, str] = {}
        for line in head_lines[1:] if head else []:
            name, _, value = line.partition(":")
            resp_headers[name] = value.strip()
        text = body_bytes.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("SessionID"), str) and slug.endswith("-ok"):
            placeholder = "<SESSION_ID>" if "<SESSION_ID>" not in self.secrets.values() else "<SESSION_ID_TICKETD>"
            self.secrets[parsed["SessionID"]] = placeholder
        body_text = content.decode("utf-8") if content else None
        red_query = self.redact(query)
        record: dict[str, Any] = {"description": description}
        if notes:
            record["notes"] = notes
        record |= {
            "recorded_at_utc": sent_at,
            "request": {
                "method": method,
                "route": route,
                "path": self.redact(path),
                "query_string": red_query,
                "query_params": [[k, v] for k, v in parse_qsl(red_query, keep_blank_values=True)],
                "url": self.redact(raw_target),
                "headers": {k: self.redact(v) for k, v in request.headers.multi_items()},
                "body_text": self.redact(body_text) if body_text is not None else None,
                "body_json": json.loads(self.redact(body_text)) if body_text else None,
            },
            "response": {
                "http_version": version,
                "status": int(status) if status else None,
                "reason": reason,
                "headers": resp_headers,
                "body_text": self.redact(text),
                "body_json": json.loads(self.redact(text)) if parsed is not None else None,
            },
        }
        used = [p for p in ("<PASSWORD>", "<SESSION_ID>", "<SESSION_ID_TICKETD>") if p in json.dumps(record)]
        record["redacted_placeholders"] = used
        name = f"{self.number:03d}-{slug}.json"
        self.number += 1
        (self.out / name).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        self.names.append(name)
        print(f"{name}: {status} {text[:100]}", flush=True)
        return parsed


def record(server: ZnunyServer, out: Path) -> list[str]:
    rec = Recorder(server, out)
    pw = server.password
    agent = server.user
    rs = RELEASE
    login = rec.call(
        "release-session-create-ok",
        "SessionCreate, agent1.",
        rs,
        "POST",
        "/Session",
        body={"UserLogin": agent, "Password": pw},
    )
    sid = login["SessionID"]
    rec.call(
        "release-session-create-bad-password",
        "SessionCreate with a wrong password.",
        rs,
        "POST",
        "/Session",
        body={"UserLogin": agent, "Password": WRONG_PASSWORD},
    )

    def article(subject: str, body: str, sender: str = "customer") -> dict[str, Any]:
        return {
            "CommunicationChannel": "Email",
            "SenderType": sender,
            "IsVisibleForCustomer": 1,
            "From": "Kunde <kunde@example.com>",
            "Subject": subject,
            "Body": body,
            "ContentType": "text/plain; charset=utf8",
        }

    ids: list[str] = []
    tickets = [
        ("Drucker im 2. Stock druckt nur Müll", "Grüße aus Köln: der Drucker über der Küche ist kaputt.\n", "new"),
        ("VPN disconnects", "The VPN drops every ten minutes.\n", "new"),
        ("Password reset", "Please reset my password.\n", "open"),
    ]
    creates = []
    for i, (title, text, state) in enumerate(tickets, 1):
        creates.append(time.time())
        answer = rec.call(
            f"release-ticket-create-{i}",
            f"TicketCreate #{i} in Raw ({state}){' with German umlauts' if i == 1 else ''}.",
            rs,
            "POST",
            "/Ticket",
            body={
                "SessionID": sid,
                "Ticket": {
                    "Title": title,
                    "Queue": "Raw",
                    "State": state,
                    "Priority": "3 normal",
                    "CustomerUser": "kunde@example.com",
                },
                "Article": article(title, text),
            },
        )
        ids.append(str(answer["TicketID"]))
        time.sleep(CREATE_PAUSE_S)
    t1, t2, t3 = ids
    cutoff = datetime.fromtimestamp(int(creates[1]), UTC).strftime("%Y-%m-%d %H:%M:%S")

    def search(slug: str, description: str, body: dict[str, Any], ws: str = rs, notes: str | None = None) -> Any:
        return rec.call(slug, description, ws, "POST", "/Ticket/Search", body={"SessionID": sid, **body}, notes=notes)

    search(
        "release-search-new-open-raw-age-up-limit",
        "new+open in Raw, oldest first, Limit 2.",
        {"StateType": ["new", "open"], "Queues": ["Raw"], "SortBy": "Age", "OrderBy": "Up", "Limit": 2},
    )
    search(
        "release-search-create-time-newer-date",
        f"TicketCreateTimeNewerDate {cutoff} (the second create).",
        {"TicketCreateTimeNewerDate": cutoff},
    )
    search("release-search-unknown-queue", "Queues with an unknown name only.", {"Queues": ["NoSuchQueue"]})
    search("release-search-unknown-and-raw-queue", "Queues [unknown, Raw].", {"Queues": ["NoSuchQueue", "Raw"]})
    search(
        "release-search-unknown-and-known-priority",
        "Priorities [unknown, '3 normal'].",
        {"Priorities": ["9 no such", "3 normal"]},
    )
    search("release-search-no-hits", "A title nothing has.", {"Title": "no such title *"})

    rec.call(
        "release-ticket-get-one", "TicketGet, one ticket.", rs, "GET", f"/Ticket/{t1}", params=[("SessionID", sid)]
    )
    rec.call(
        "release-ticket-get-several-comma",
        "TicketGet, comma-separated ids.",
        rs,
        "GET",
        f"/Ticket/{t1},{t2}",
        params=[("SessionID", sid)],
    )
    first_customer = [
        ("AllArticles", "1"),
        ("ArticleSenderType", "customer"),
        ("ArticleOrder", "ASC"),
        ("ArticleLimit", "1"),
    ]
    rec.call(
        "release-ticket-get-first-customer-article",
        "TicketGet as the connector reads: first customer article.",
        rs,
        "GET",
        f"/Ticket/{t1}",
        params=[("SessionID", sid), *first_customer],
    )
    rec.call(
        "release-ticket-get-zero",
        "TicketGet for id 0 (the connector's probe).",
        rs,
        "GET",
        "/Ticket/0",
        params=[("SessionID", sid)],
    )
    rec.call(
        "release-ticket-get-nonexistent",
        "TicketGet for an id no ticket has.",
        rs,
        "GET",
        "/Ticket/999999999",
        params=[("SessionID", sid)],
    )
    note = {
        "CommunicationChannel": "Internal",
        "IsVisibleForCustomer": 0,
        "SenderType": "agent",
        "Subject": "ticketd",
        "Body": "Moved by ticketd: confidence 0.91.",
        "ContentType": "text/plain; charset=utf8",
    }
    rec.call(
        "release-ticket-update-queue-priority-note",
        "TicketUpdate as connector.apply sends it.",
        rs,
        "PATCH",
        f"/Ticket/{t1}",
        body={"SessionID": sid, "Ticket": {"Queue": "Misc", "Priority": "4 high"}, "Article": note},
    )
    rec.call(
        "release-ticket-update-zero-empty",
        "TicketUpdate of id 0 with no data (the connector's probe).",
        rs,
        "PATCH",
        "/Ticket/0",
        body={"SessionID": sid},
    )
    rec.call(
        "release-ticket-update-nonexistent-queue",
        "TicketUpdate into a queue that does not exist.",
        rs,
        "PATCH",
        f"/Ticket/{t2}",
        body={"SessionID": sid, "Ticket": {"Queue": "NoSuchQueue"}},
    )
    time.sleep(CREATE_PAUSE_S)
    close_cutoff = datetime.fromtimestamp(int(time.time()), UTC).strftime("%Y-%m-%d %H:%M:%S")
    rec.call(
        "release-ticket-update-close",
        f"Close ticket {t3}.",
        rs,
        "PATCH",
        f"/Ticket/{t3}",
        body={"SessionID": sid, "Ticket": {"State": "closed successful"}},
    )
    search(
        "release-search-closed-close-time-newer-date",
        f"closed, TicketCloseTimeNewerDate {close_cutoff}.",
        {"StateType": "closed", "TicketCloseTimeNewerDate": close_cutoff},
    )
    rec.call(
        "release-ticket-get-closed-extended",
        "TicketGet of the closed ticket, Extended=1.",
        rs,
        "GET",
        f"/Ticket/{t3}",
        params=[("SessionID", sid), ("Extended", "1")],
    )
    rec.call(
        "release-ticket-get-updated-all-articles",
        "TicketGet after the update, all articles.",
        rs,
        "GET",
        f"/Ticket/{t1}",
        params=[("SessionID", sid), ("AllArticles", "1")],
    )
    rec.call(
        "release-ticket-history-get",
        "TicketHistoryGet at the release route.",
        rs,
        "GET",
        f"/Ticket/History/{t1}",
        params=[("SessionID", sid)],
    )
    rec.call(
        "release-ticket-get-seeded-ticket-1",
        "TicketGet of the installer's ticket 1, all articles.",
        rs,
        "GET",
        "/Ticket/1",
        params=[("SessionID", sid), ("AllArticles", "1")],
    )
    rec.call(
        "release-dev-route-ticket-search-get",
        "The dev layout's TicketSearch route (GET /Ticket).",
        rs,
        "GET",
        "/Ticket",
        params=[("SessionID", sid)],
    )
    rec.call(
        "release-dev-route-ticket-list",
        "The dev layout's TicketGetList route.",
        rs,
        "GET",
        "/TicketList",
        params=[("SessionID", sid), ("TicketID", t1)],
    )
    rec.call(
        "release-dev-route-ticket-history",
        "The dev layout's TicketHistoryGet route.",
        rs,
        "GET",
        f"/TicketHistory/{t1}",
        params=[("SessionID", sid)],
    )
    rec.call(
        "release-get-ticket-search",
        "GET /Ticket/Search: matches TicketGet with TicketID 'Search'.",
        rs,
        "GET",
        "/Ticket/Search",
        params=[("SessionID", sid)],
    )

    td = TICKETD
    login2 = rec.call(
        "ticketd-session-create-ok",
        "SessionCreate on the ticketd web service.",
        td,
        "POST",
        "/Session",
        body={"UserLogin": agent, "Password": pw},
    )
    sid2 = login2["SessionID"]
    rec.call(
        "ticketd-ticket-create-not-routed",
        "POST /Ticket: ticketd's web service has no TicketCreate.",
        td,
        "POST",
        "/Ticket",
        body={"SessionID": sid2, "Ticket": {"Title": "x"}},
    )
    rec.call(
        "ticketd-get-ticket-not-routed",
        "GET /Ticket: no dev-layout TicketSearch here.",
        td,
        "GET",
        "/Ticket",
        params=[("SessionID", sid2)],
    )
    rec.call(
        "ticketd-search-new-open",
        "TicketSearch new+open, Limit 1 (the connector's check).",
        td,
        "POST",
        "/Ticket/Search",
        body={"SessionID": sid2, "StateType": ["new", "open"], "Limit": "1"},
    )
    rec.call(
        "ticketd-ticket-get",
        "TicketGet on ticketd.",
        td,
        "GET",
        f"/Ticket/{t2}",
        params=[("SessionID", sid2), *first_customer],
    )
    rec.call(
        "ticketd-ticket-update-priority",
        "TicketUpdate priority on ticketd.",
        td,
        "PATCH",
        f"/Ticket/{t2}",
        body={"SessionID": sid2, "Ticket": {"Priority": "2 low"}},
    )
    rec.call(
        "ticketd-ticket-get-zero", "TicketGet id 0 on ticketd.", td, "GET", "/Ticket/0", params=[("SessionID", sid2)]
    )
    rec.call(
        "ticketd-ticket-update-zero-empty",
        "TicketUpdate id 0 on ticketd.",
        td,
        "PATCH",
        "/Ticket/0",
        body={"SessionID": sid2},
    )
    return rec.names


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ticketd-znuny-record-"))
    services = {k: v for k, v in ZNUNY_WEBSERVICES.items() if k != "GenericTicketConnectorREST"}
    server = start_znuny(root, services)
    try:
        seeded = server.psql("SELECT create_time FROM ticket WHERE id = 1").strip()
        print("seeded:", server.psql("SELECT id, tn, create_time, change_time FROM ticket ORDER BY id"), flush=True)
        facts = {"version": "7.1.7", "webservices": list(services), "seeded_at": seeded}
        (out / "server.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        print("queues:", server.psql("SELECT id, name, group_id FROM queue ORDER BY id").replace("\n", "; "))
        print("users:", server.psql("SELECT id, login, create_time FROM users ORDER BY id").replace("\n", "; "))
        names = record(server, out)
        print(f"{len(names)} recordings in {out}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
