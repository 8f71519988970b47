"""Record a real Request Tracker 5's REST 2 answers to every call the RT connector makes, as replayable JSON.

    .venv/bin/python -m tests.connectors.rt.record [OUTDIR]

Starts its own RT with `start_rt` in a temporary directory, sends one consistent history of
requests (the `SCENARIO` below: the agent `ticketd` by password, by token and by web session, root as the human
behind the connector's back), and writes `NNN-<slug>.json` per exchange plus `server.json` (with the `Version`
RT reports) into OUTDIR (default: the `recordings/` folder next to this file, emptied first).
tests/connectors/rt/test_fake_replay.py sends the same requests to tests.support.fakes.rt.FakeRT and compares
the answers.

A recording holds the request (`auth`: who sent it, never the secret; `base`, the URL the path is under:
REST 2's, or RT's web root for the login form; the path; the query exactly as httpx encoded it; the JSON body,
or for the login form `form` with the password of `auth` as `<PASSWORD>`; `headers` beyond `Accept` and the
credentials: the session `Cookie`, a `Referer`) and the response (status, the headers that carry meaning, the
body as text and as JSON). Redacted: the base URL becomes `<RT_URL>` (RT writes absolute links everywhere), the
port in the session cookie's name (`RT_SID_<rtname>.<port>`) `<RT_PORT>`, and every session id RT sets a
placeholder named where it is first set (`<SESSION>`, `<ANON_SESSION>`, ...; the replay binds each to the id the
fake sets in the same place); passwords and the token appear nowhere, since the request's Authorization header
is not stored. `sessions_ended`: before this request the recorder deleted every web session RT had (what RT's
session cleaner does). `sent_at` is when the request left (the replay sets the fake's clock to it); `server_time`,
the response's Date header, is RT's own clock, for reference. A run takes about 40 s, most of it pauses that keep
dates apart.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.support.servers.rt import RTServer, start_rt

HERE = Path(__file__).parent / "recordings"
BASE_PLACEHOLDER = "<RT_URL>"
PORT_PLACEHOLDER = "<RT_PORT>"
PASSWORD_PLACEHOLDER = "<PASSWORD>"
LOGIN = "/NoAuth/Login.html"  # RT's web login form (connectors/rt/client.py LOGIN)
SESSION_ID = re.compile(r"[0-9a-f]{32}")
WRONG_PASSWORD = "WrongPassword"
WRONG_TOKEN = "1-99-0123456789abcdef"  # the shape of an RT auth token, for no token RT has
KEPT_HEADERS = ("Content-Type", "Location", "Retry-After", "ETag", "Last-Modified", "Set-Cookie")
PAUSE_S = 1.1  # RT's dates have one-second resolution: apart by this, creates and resolves sort unambiguously
FIELDS = "Subject,Status,Priority,Queue,Created,Resolved"  # connectors/rt/connector.py FIELDS
ATTACHMENT_FIELDS = "ContentType,Content,Filename"


@dataclass
class Auth:
    """Who sends a request: `auth` names it in the recording; the secret itself is never written."""

    name: str
    httpx_auth: httpx.Auth | None = None
    header: str | None = None
    login: tuple[str, str] | None = None  # user and password, for RT's login form


class Recorder:
    def __init__(self, server: RTServer, out: Path) -> None:
        self.server = server
        self.out = out
        self.number = 1
        self.names: list[str] = []
        self.auths = {
            "agent": Auth(
                "agent",
                httpx.BasicAuth(server.agent, server.agent_password),
                login=(server.agent, server.agent_password),
            ),
            "token": Auth("token", header=f"token {server.token}"),
            "root": Auth("root", httpx.BasicAuth("root", server.root_password)),
            "wrong-password": Auth(
                "wrong-password", httpx.BasicAuth(server.agent, WRONG_PASSWORD), login=(server.agent, WRONG_PASSWORD)
            ),
            "wrong-token": Auth("wrong-token", header=f"token {WRONG_TOKEN}"),
            "none": Auth("none"),
        }
        self.cookie_name = f"RT_SID_ticketd-test.{server.port}"  # RT_SID_<rtname>.<port>, rtname from start_rt
        self.sessions: dict[str, str] = {}  # session placeholder -> the id RT set
        self.sessions_ended = False
        self.client = httpx.Client(timeout=60)

    def redact(self, text: str) -> str:
        for secret in (self.server.agent_password, self.server.root_password, self.server.token):
            assert secret not in text, "a secret in an answer"
        for placeholder, sid in self.sessions.items():
            text = text.replace(sid, placeholder)
        text = text.replace(self.cookie_name, self.cookie_name.rpartition(".")[0] + "." + PORT_PLACEHOLDER)
        return text.replace(self.server.url, BASE_PLACEHOLDER)

    def cookie(self, placeholder: str) -> str:
        """The session cookie header for a session RT set earlier, named by its placeholder."""
        return f"{self.cookie_name}={self.sessions[placeholder]}"

    def end_sessions(self) -> None:
        """Every web session RT holds is gone (its session files: RT on SQLite keeps them in MasonSessionDir), as
        RT's session cleaner leaves them; the next recording says so."""
        for path in (self.server.root / "sessions").iterdir():
            if path.is_file():
                path.unlink()
        self.sessions_ended = True

    def call(
        self,
        slug: str,
        description: str,
        who: str,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        notes: str | None = None,
        cookie: str | None = None,
        referer: bool = False,
        sets: str | None = None,
    ) -> Any:
        """One exchange, sent as the connector sends it (httpx, `Accept: application/json`), recorded.

        `path` is under REST 2, except the login form (LOGIN: `who`'s user and password as RT's form fields, no
        Authorization, no `Accept`). `cookie` sends the session set earlier under that placeholder; `referer` the
        `Referer` the connector sends with it. `sets` names the session whose cookie RT sets in this answer; an
        answer that sets one unnamed stops the recording.
        """
        auth = self.auths[who]
        web = path == LOGIN
        headers = {"Accept": "application/json"}
        recorded_headers: dict[str, str] = {}
        if cookie is not None:
            headers["Cookie"] = self.cookie(cookie)
            recorded_headers["Cookie"] = headers["Cookie"]
        if referer:
            headers["Referer"] = recorded_headers["Referer"] = f"{self.server.url}/"
        form: dict[str, str] | None = None
        if web:
            assert auth.login is not None and body is None, f"{who} cannot log in"
            form = {"user": auth.login[0], "pass": auth.login[1]}
            del headers["Accept"]  # the connector posts the form as a form, with httpx's default Accept
            request = self.client.build_request(method, self.server.url + path, data=form, headers=headers)
        else:
            if auth.header:
                headers["Authorization"] = auth.header
            request = self.client.build_request(
                method, self.server.api + path, params=tuple(params or ()), json=body, headers=headers
            )
            if auth.httpx_auth is not None:
                request = next(auth.httpx_auth.auth_flow(request))
        sent_at = datetime.now(UTC)
        response = self.client.send(request)
        self.client.cookies.clear()  # a cookie travels only where a step names it
        set_cookies = response.headers.get_list("Set-Cookie")
        assert len(set_cookies) <= 1, set_cookies
        if set_cookies:
            name, _, rest = set_cookies[0].partition("=")
            sid = rest.partition(";")[0]
            assert name == self.cookie_name and SESSION_ID.fullmatch(sid), set_cookies
            if sid not in self.sessions.values():
                assert sets is not None and sets not in self.sessions, f"{slug}: RT set a session nobody named"
                self.sessions[sets] = sid
        else:
            assert sets is None, f"{slug}: RT set no session cookie"
        text = response.text
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        date = response.headers.get("Date")
        server_time = parsedate_to_datetime(date).astimezone(UTC) if date else sent_at
        query = request.url.query.decode("ascii")
        record: dict[str, Any] = {"description": description}
        if notes:
            record["notes"] = notes
        if self.sessions_ended:
            record["sessions_ended"] = True
            self.sessions_ended = False
        request_record: dict[str, Any] = {
            "auth": who,
            "method": method,
            "base": BASE_PLACEHOLDER + ("" if web else self.server.api[len(self.server.url) :]),
            "path": path,
            "query": query,
            "params": [[k, v] for k, v in parse_qsl(query, keep_blank_values=True)],
            "body_json": body,
        }
        if form is not None:
            request_record["form"] = {"user": form["user"], "pass": PASSWORD_PLACEHOLDER}
        if recorded_headers:
            request_record["headers"] = {k: self.redact(v) for k, v in recorded_headers.items()}
        record |= {
            "sent_at": sent_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "server_time": server_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "request": request_record,
            "response": {
                "status": response.status_code,
                "headers": {k: self.redact(response.headers[k]) for k in KEPT_HEADERS if k in response.headers},
                "body_text": self.redact(text),
                "body_json": json.loads(self.redact(text)) if parsed is not None else None,
            },
        }
        name = f"{self.number:03d}-{slug}.json"
        self.number += 1
        (self.out / name).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        self.names.append(name)
        print(f"{name}: {response.status_code} {text[:90]!r}", flush=True)
        return parsed

    def close(self) -> None:
        self.client.close()


def _sql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def new_search(queues: str, statuses: str, after: int) -> str:
    """connectors/rt/connector.py fetch_new's TicketSQL."""
    return f"{queues} AND {statuses} AND id > {after}"


def search_params(query: str, order: str, page: int, per_page: int, fields: str = FIELDS) -> list[tuple[str, str]]:
    """As the connector sends a search: query, fields, orderby/order (repeated), then page and per_page."""
    params = [("query", query), ("fields", fields), ("orderby", order), ("order", "ASC")]
    if order != "id":
        params += [("orderby", "id"), ("order", "ASC")]
    return [*params, ("page", str(page)), ("per_page", str(per_page))]


def count_params(query: str, fields: str = "id") -> list[tuple[str, str]]:
    """The connector's count and rights probes: one row is enough, `total` says the rest."""
    return [("query", query), ("per_page", "1"), ("fields", fields)]


def record(server: RTServer, out: Path) -> dict[str, Any]:
    """The scenario; returns facts for server.json (the ids RT gave, the agent's time zone)."""
    rec = Recorder(server, out)
    try:
        return _scenario(rec)
    finally:
        rec.close()


def _scenario(rec: Recorder) -> dict[str, Any]:
    call = rec.call
    raw, new = "(Queue = 'Raw')", "(Status = 'new')"

    # -- taxonomy, auth, probes on an empty RT -----------------------------------------------------------
    call(
        "queues-all",
        "The connector's queue listing: every queue the agent sees.",
        "agent",
        "GET",
        "/queues/all",
        params=[("fields", "Name"), ("page", "1"), ("per_page", "100")],
        notes="___Approvals (id 2) is never listed. Sorted by name. `total` and `pages` are set here; "
        "`next_page` copies the query with `page` deleted from the middle, which leaves `&=&` behind.",
    )
    for page in (1, 2, 3):
        call(
            f"queues-all-page-{page}",
            f"Queue listing, 3 per page, page {page}.",
            "agent",
            "GET",
            "/queues/all",
            params=[("fields", "Name"), ("page", str(page)), ("per_page", "3")],
        )
    call(
        "queues-all-token",
        "Queue listing with the auth token.",
        "token",
        "GET",
        "/queues/all",
        params=[("fields", "Name"), ("page", "1"), ("per_page", "100")],
    )
    call(
        "queues-all-wrong-password",
        "Queue listing with a wrong password.",
        "wrong-password",
        "GET",
        "/queues/all",
        params=[("fields", "Name"), ("page", "1"), ("per_page", "100")],
    )
    call(
        "queues-all-wrong-token",
        "Queue listing with a token RT does not have.",
        "wrong-token",
        "GET",
        "/queues/all",
        params=[("fields", "Name"), ("page", "1"), ("per_page", "100")],
    )
    call("queue-billing", "Billing: the agent has CreateTicket there (a `create` link).", "agent", "GET", "/queue/4")
    call("queue-archive", "Archive: SeeQueue but no CreateTicket (no `create` link).", "token", "GET", "/queue/8")
    call("queue-unknown", "A queue id nobody has.", "agent", "GET", "/queue/999")
    call(
        "rights-probe-empty",
        "check's ticket-rights probe before any ticket exists.",
        "agent",
        "GET",
        "/tickets",
        params=count_params(raw, "Queue"),
    )
    call(
        "count-empty",
        "A priority count before any ticket exists.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 100"),
    )
    call(
        "search-unknown-field",
        "TicketSQL with a field RT does not know.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Bogus = 'x'"),
    )
    call(
        "search-incomplete",
        "TicketSQL cut off after the operator.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Queue ="),
    )

    # -- tickets, created by root (the customer's mail, as the harness does) -----------------------------
    def create(
        slug: str,
        subject: str,
        content: str,
        *,
        queue: str = "Raw",
        content_type: str = "text/plain",
        requestor: str = "customer@ticketd.test",
        note: str = "",
    ) -> int:
        body = {
            "Queue": queue,
            "Subject": subject,
            "Content": content,
            "ContentType": content_type,
            "Requestor": requestor,
        }
        answer = call(slug, f"root creates a ticket in {queue}{note}.", "root", "POST", "/ticket", body=body)
        time.sleep(PAUSE_S)
        return int(answer["id"])

    t1 = create(
        "create-plain",
        "Printer offline",
        "The printer on floor 3 shows error 41.\nPlease help.",
        note=" (a new requestor: RT creates the user)",
    )
    t2 = create(
        "create-html",
        "Invoice wrong",
        "<p>We were charged <b>twice</b> for order 1234.</p>",
        content_type="text/html",
        note=" with an HTML body",
    )
    t3 = create(
        "create-other-requestor",
        "Laptop broken",
        "Screen flickers.",
        requestor="other@ticketd.test",
        note=" (another new requestor)",
    )
    t4 = create("create-refund", "Refund request", "Please refund order 1234.")
    t5 = create(
        "create-billing", "Not inbound", "Filed straight into Billing.", queue="Billing", note=" (not an inbound queue)"
    )

    # -- reading as fetch_new does ------------------------------------------------------------------------
    call(
        "search-new",
        "fetch_new's search from the start.",
        "agent",
        "GET",
        "/tickets",
        params=search_params(new_search(raw, new, 0), "id", 1, 100),
    )
    for page in (1, 2, 3):
        call(
            f"search-new-page-{page}",
            f"fetch_new's search, 2 per page, page {page}.",
            "token",
            "GET",
            "/tickets",
            params=search_params(new_search(raw, new, 0), "id", page, 2),
        )
    call(
        "search-new-two-queues-two-statuses",
        "Two inbound queues and two new statuses, after id 1.",
        "agent",
        "GET",
        "/tickets",
        params=search_params(
            new_search("(Queue = 'Raw' OR Queue = 'Misc')", "(Status = 'new' OR Status = 'open')", t1), "id", 1, 100
        ),
    )
    history = call(
        "history-plain",
        "The plain ticket's history, as _first_message reads it.",
        "agent",
        "GET",
        f"/ticket/{t1}/history",
        params=[("fields", "Type"), ("page", "1"), ("per_page", "50")],
        notes="The EmailRecord of RT's AutoReply is not shown: the agent lacks ShowOutgoingEmail.",
    )
    create1 = next(t["id"] for t in history["items"] if t["Type"] == "Create")
    call(
        "attachments-plain",
        "The create's attachments (plain text).",
        "agent",
        "GET",
        f"/transaction/{create1}/attachments",
        params=[("fields", ATTACHMENT_FIELDS)],
    )
    history2 = call(
        "history-html",
        "The HTML ticket's history.",
        "token",
        "GET",
        f"/ticket/{t2}/history",
        params=[("fields", "Type"), ("page", "1"), ("per_page", "50")],
    )
    create2 = next(t["id"] for t in history2["items"] if t["Type"] == "Create")
    call(
        "attachments-html",
        "The create's attachments (HTML).",
        "token",
        "GET",
        f"/transaction/{create2}/attachments",
        params=[("fields", ATTACHMENT_FIELDS)],
    )
    call(
        "attachments-parent",
        "Attachments with `Parent` among the fields.",
        "agent",
        "GET",
        f"/transaction/{create1}/attachments",
        params=[("fields", ATTACHMENT_FIELDS + ",Parent")],
        notes="RT 5.0.3 answers 500 with an empty JSON-typed body: the reason the connector never asks for Parent.",
    )
    call(
        "attachments-unknown-transaction",
        "Attachments of a transaction nobody has.",
        "agent",
        "GET",
        "/transaction/999999/attachments",
        params=[("fields", ATTACHMENT_FIELDS)],
        notes="A 500 from Plack, text/plain: RT dies loading the missing transaction.",
    )
    call(
        "history-unknown-ticket",
        "History of a ticket nobody has.",
        "agent",
        "GET",
        "/ticket/999999/history",
        params=[("fields", "Type"), ("page", "1"), ("per_page", "50")],
        notes="200 with no items, not 404.",
    )
    call(
        "ticket-plain",
        "A new ticket's record (basic auth).",
        "agent",
        "GET",
        f"/ticket/{t1}",
        notes="`id` is a number at the top and a string in every reference; Priority is a string.",
    )
    call("ticket-plain-token", "The same record with the token.", "token", "GET", f"/ticket/{t1}")
    call(
        "ticket-plain-root",
        "The same record as root (a superuser: correspond and delete links).",
        "root",
        "GET",
        f"/ticket/{t1}",
    )
    call("ticket-unknown", "A ticket id nobody has.", "agent", "GET", "/ticket/999999")

    # -- check: rights probe and priority verification ----------------------------------------------------
    call(
        "rights-probe",
        "check's ticket-rights probe: one ticket in an inbound queue.",
        "agent",
        "GET",
        "/tickets",
        params=count_params(raw, "Queue"),
    )
    for name, value in (("Low", 0), ("Medium", 50), ("High", 100)):
        call(
            f"count-priority-{value}",
            f"Tickets at priority {value}.",
            "agent",
            "GET",
            "/tickets",
            params=count_params(f"Priority = {value}"),
            notes="With `fields=id` the ids in items are numbers.",
        )
        call(
            f"count-priority-{name.lower()}",
            f"Tickets at priority {name!r} (RT translates the name).",
            "agent",
            "GET",
            "/tickets",
            params=count_params(f"Priority = '{name}'"),
        )
    call(
        "count-priority-unknown-name",
        "A priority name RT does not know.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 'Bogus'"),
        notes="No error: matches nothing (SQLite compares it as text).",
    )
    call(
        "count-priority-lowercase-name",
        "A priority name in lower case.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 'high'"),
    )

    # -- writing, as apply does ---------------------------------------------------------------------------
    call(
        "put-queue-priority",
        "apply: move to Billing and set High (100).",
        "agent",
        "PUT",
        f"/ticket/{t1}",
        body={"Queue": "Billing", "Priority": 100},
    )
    call("ticket-after-put", "apply's read-back after the PUT.", "agent", "GET", f"/ticket/{t1}")
    call(
        "history-data-before-comment",
        "_has_note's read before the comment.",
        "agent",
        "GET",
        f"/ticket/{t1}/history",
        params=[("fields", "Type,Data"), ("page", "1"), ("per_page", "100")],
    )
    call(
        "comment",
        "apply's private comment (token).",
        "token",
        "POST",
        f"/ticket/{t1}/comment",
        body={"Subject": "ticketd", "Content": "Routed by ticketd: Billing (0.91).", "ContentType": "text/plain"},
    )
    history3 = call(
        "history-data-after-comment",
        "_has_note's read: the comment's Data is its subject.",
        "agent",
        "GET",
        f"/ticket/{t1}/history",
        params=[("fields", "Type,Data"), ("page", "1"), ("per_page", "100")],
    )
    comment = next(t["id"] for t in history3["items"] if t["Type"] == "Comment")
    call(
        "attachments-comment",
        "The comment's attachments.",
        "agent",
        "GET",
        f"/transaction/{comment}/attachments",
        params=[("fields", ATTACHMENT_FIELDS)],
    )
    call("put-same-priority", "A PUT that changes nothing.", "agent", "PUT", f"/ticket/{t1}", body={"Priority": 100})
    call(
        "put-no-create-right",
        "Move into Archive, where the agent lacks CreateTicket.",
        "agent",
        "PUT",
        f"/ticket/{t2}",
        body={"Queue": "Archive"},
        notes="200 with a message; the ticket stays where it was.",
    )
    call(
        "put-unknown-queue-and-priority",
        "An unknown queue and a priority in one PUT.",
        "agent",
        "PUT",
        f"/ticket/{t2}",
        body={"Queue": "Nope", "Priority": 50},
        notes="200: the priority is set, the queue refused; messages in field-name order.",
    )
    call(
        "ticket-after-refusals",
        "The ticket after the refused moves: still Raw, priority 50.",
        "agent",
        "GET",
        f"/ticket/{t2}",
    )
    call(
        "put-unknown-ticket", "PUT to a ticket nobody has.", "agent", "PUT", "/ticket/999999", body={"Queue": "Billing"}
    )
    call(
        "comment-unknown-ticket",
        "A comment on a ticket nobody has.",
        "agent",
        "POST",
        "/ticket/999999/comment",
        body={"Subject": "ticketd", "Content": "x", "ContentType": "text/plain"},
    )
    call(
        "count-priority-high-after",
        "High by name after the PUT.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 'High'"),
    )
    call(
        "count-priority-100-after",
        "100 by number after the PUT.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 100"),
    )
    call(
        "count-priority-medium-after",
        "Medium by name: the refused ticket got 50.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Priority = 'Medium'"),
    )
    call(
        "search-new-after-move",
        "fetch_new's search after ticket 1 left Raw.",
        "agent",
        "GET",
        "/tickets",
        params=search_params(new_search(raw, new, 0), "id", 1, 100),
    )

    # -- the human behind the connector's back ------------------------------------------------------------
    call(
        "root-move",
        "root moves a ticket to Misc (harness.human_move).",
        "root",
        "PUT",
        f"/ticket/{t3}",
        body={"Queue": "Misc"},
    )
    call("ticket-moved", "fetch_ticket's read of the moved ticket.", "agent", "GET", f"/ticket/{t3}")
    call(
        "root-close-refund",
        "root files and resolves a ticket (harness.close).",
        "root",
        "PUT",
        f"/ticket/{t4}",
        body={"Queue": "Billing", "Priority": 100, "Status": "resolved"},
    )
    time.sleep(PAUSE_S)
    call(
        "root-close-billing",
        "root resolves the Billing ticket.",
        "root",
        "PUT",
        f"/ticket/{t5}",
        body={"Queue": "Misc", "Priority": 50, "Status": "resolved"},
    )
    resolved_at = datetime.now(UTC).replace(microsecond=0)
    call("ticket-resolved", "A resolved ticket's record.", "agent", "GET", f"/ticket/{t4}")
    call(
        "search-closed",
        "fetch_closed's search without a cursor.",
        "agent",
        "GET",
        "/tickets",
        params=search_params("(Status = 'resolved')", "Resolved", 1, 100),
    )
    call(
        "search-closed-page-1",
        "fetch_closed's search, 1 per page.",
        "token",
        "GET",
        "/tickets",
        params=search_params("(Status = 'resolved')", "Resolved", 1, 1),
    )
    call(
        "search-closed-page-2",
        "fetch_closed's search, 1 per page, page 2.",
        "token",
        "GET",
        "/tickets",
        params=search_params("(Status = 'resolved')", "Resolved", 2, 1),
    )
    call(
        "search-closed-page-3",
        "fetch_closed's search past the last page.",
        "token",
        "GET",
        "/tickets",
        params=search_params("(Status = 'resolved')", "Resolved", 3, 1),
        notes="An empty page; prev_page points at the last page there is.",
    )
    one_hour = _sql_time(resolved_at - timedelta(hours=1))
    call(
        "search-closed-utc-minus-1h",
        f"Resolved > {one_hour!r}: a UTC time one hour back.",
        "agent",
        "GET",
        "/tickets",
        params=search_params(f"(Status = 'resolved') AND Resolved > '{one_hour}'", "Resolved", 1, 100),
        notes="No hits: RT reads the date in the agent's time zone (RT's default US/Eastern), hours after UTC.",
    )
    six_hours = _sql_time(resolved_at - timedelta(hours=6))
    call(
        "search-closed-utc-minus-6h",
        f"Resolved > {six_hours!r}: a UTC time six hours back.",
        "agent",
        "GET",
        "/tickets",
        params=search_params(f"(Status = 'resolved') AND Resolved > '{six_hours}'", "Resolved", 1, 100),
        notes="Both hits: six hours back in UTC is still before the resolves when read as US/Eastern.",
    )
    slack = _sql_time(resolved_at - timedelta(hours=14, seconds=30))
    call(
        "search-closed-cursor",
        "fetch_closed's search from a cursor (ZONE_SLACK, 14 h early).",
        "agent",
        "GET",
        "/tickets",
        params=search_params(f"(Status = 'resolved') AND Resolved > '{slack}'", "Resolved", 1, 100),
    )
    call(
        "search-closed-garbage-date",
        "Resolved > a date RT cannot read.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("Status = 'resolved' AND Resolved > 'garbage'"),
        notes="No error: an unreadable date is the epoch, so every resolved ticket matches.",
    )
    call(
        "history-resolved",
        "The resolved ticket's history (Set Queue/Priority, Status).",
        "agent",
        "GET",
        f"/ticket/{t4}/history",
        params=[("fields", "Type,Data"), ("page", "1"), ("per_page", "50")],
    )
    for page in (1, 2, 3):
        call(
            f"history-resolved-per-page-1-page-{page}",
            f"The same history one per page, page {page}.",
            "agent",
            "GET",
            f"/ticket/{t4}/history",
            params=[("fields", "Type"), ("page", str(page)), ("per_page", "1")],
            notes="RT hides the EmailRecord (no ShowOutgoingEmail) after paging: page 2 is empty though "
            "page 3 is not. `total` and `pages` are null here.",
        )
    call(
        "history-root",
        "root's view of a history (harness.history): EmailRecords and Creator.",
        "root",
        "GET",
        f"/ticket/{t1}/history",
        params=[("fields", "Type,Field,Creator,Data"), ("per_page", "100")],
    )
    call(
        "search-case-insensitive",
        "Queue, Status and keywords in other cases.",
        "agent",
        "GET",
        "/tickets",
        params=count_params("queue = 'raw' and status = 'NEW'"),
    )
    call(
        "search-not-equal-and-range",
        "`!=`, `>=` and `<=`.",
        "agent",
        "GET",
        "/tickets",
        params=count_params(f"Queue != 'Raw' AND id >= {t2} AND id <= {t5}"),
    )

    # -- the web session the connector rides with user and password (connectors/rt/client.py) ------------
    login = "RT's login form (the HTML login page; RT sets a session cookie either way)"
    call(
        "login-wrong-password",
        f"{login} with a wrong password.",
        "wrong-password",
        "POST",
        LOGIN,
        sets="<ANON_SESSION>",
        notes="200, not a redirect: the cookie is an anonymous session, which only a call on it tells apart.",
    )
    call("login", f"{login} with the agent's password.", "agent", "POST", LOGIN, sets="<SESSION>")
    call(
        "rt-session",
        "The connector's probe after its login: GET /rt with the session cookie alone.",
        "none",
        "GET",
        "/rt",
        cookie="<SESSION>",
    )
    call(
        "rt-anonymous-session",
        "The probe on the wrong password's cookie.",
        "none",
        "GET",
        "/rt",
        cookie="<ANON_SESSION>",
        notes="A caller with a cookie looks like a browser to RT: 302 to WebPath's `/` (relative), `Login required`, "
        "no Content-Type; no new cookie, since RT holds this (anonymous) session.",
    )
    call(
        "session-wrong-password",
        "A read with the session cookie and a wrong password: the cookie wins.",
        "wrong-password",
        "GET",
        f"/ticket/{t1}",
        cookie="<SESSION>",
    )
    call(
        "anonymous-session-password",
        "A read with the anonymous cookie and the right password: RT falls back to the password.",
        "agent",
        "GET",
        f"/ticket/{t1}",
        cookie="<ANON_SESSION>",
    )
    call(
        "put-session-referer",
        "A write on the session cookie alone, with the connector's Referer.",
        "none",
        "PUT",
        f"/ticket/{t2}",
        body={"Priority": 0},
        cookie="<SESSION>",
        referer=True,
        notes="start_rt sets RestrictReferrer 0; RT's default would refuse a cookie write without this Referer.",
    )
    rec.end_sessions()
    call(
        "rt-ended-session",
        "The probe on the session cookie after RT ended every session.",
        "none",
        "GET",
        "/rt",
        cookie="<SESSION>",
        sets="<NEW_SESSION>",
        notes="302 with a new anonymous session's cookie: RT starts one for a cookie it does not hold.",
    )
    call(
        "ended-session-password",
        "A read with the ended session's cookie and the right password: RT falls back to the password.",
        "agent",
        "GET",
        f"/ticket/{t1}",
        cookie="<SESSION>",
    )
    call(
        "ended-session-wrong-password",
        "The ended session's cookie and a wrong password.",
        "wrong-password",
        "GET",
        "/rt",
        cookie="<SESSION>",
        sets="<NEW_SESSION_2>",
        notes="302, not 401: with a cookie sent, any failed login is a browser's redirect to the login page.",
    )
    call(
        "rt-new-anonymous-session",
        "The probe on the anonymous session RT started for the ended cookie.",
        "none",
        "GET",
        "/rt",
        cookie="<NEW_SESSION>",
        notes="302 and no new cookie: RT holds this session, anonymous.",
    )
    return {
        "tickets": [t1, t2, t3, t4, t5],
        "first_create_transaction": int(create1),
        "agent_timezone": "US/Eastern",
        "resolved_at": resolved_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else HERE
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    root = Path(tempfile.mkdtemp(prefix="ticketd-rt-record-"))
    server = start_rt(root)
    try:
        facts = {
            "version": "5.0.3 (Debian 12, SQLite)",
            "rt_version": server.rest("GET", "/rt")["Version"],  # what REST 2 reports; the fake's VERSION
            "agent": server.agent,
            "initialized_at": server.rest("GET", "/queue/1")["Created"],  # rt-setup-database --action init
            "data_loaded_at": server.rest("GET", "/queue/3")["Created"],  # start_rt's queues, agent, rights
            **record(server, out),
        }
        (out / "server.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        print(f"{len(list(out.glob('[0-9]*.json')))} recordings in {out}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
