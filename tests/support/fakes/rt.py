"""A stateful in-memory Request Tracker 5.0.3 (REST 2), for the RT connector's fast tests and contract backend.

Built from the recordings of a real RT (tests/connectors/rt/record.py; every one of them is replayed against this
fake by tests/connectors/rt/test_fake_replay.py) and from RT's source (/usr/share/request-tracker5/lib/RT). It
starts as `tests.support.servers.rt.start_rt` leaves a real RT: queues General (1), ___Approvals (2, hidden), Raw,
Billing, Misc, Hardware, Technical Support (3-7), Archive (8); the agent `ticketd` with a password and an auth
token, global SeeQueue, ShowTicket, ShowTicketComments, ModifyTicket, CommentOnTicket, and CreateTicket on the
queues 3-7 only; `root`, a superuser, as the human behind the connector's back.

What it reproduces, as RT 5.0.3 on SQLite answers (the `surprise` ones are marked):

- auth: a logged-in web session's cookie first (RT's login form, LOGIN, sets a session cookie for a wrong password
  too: an anonymous session), then HTTP basic or `Authorization: token <token>`; anything else is 401
  `{"message":"Unauthorized"}`, except that a caller with any cookie gets RT's browser answer (surprise): 302 to
  `/`, `Login required`, no Content-Type, and the cookie of a new anonymous session where its own names none RT
  holds (an ended one).
- errors are `{"message": ...}` typed `application/json; charset=utf-8`; successes are typed
  `application/json; charset="utf-8"` (quoted), except POST /ticket's 201 (unquoted).
- collections: `count`, `page`, `per_page` (default 20, at most 100), `total` and `pages` (null where RT cannot
  vouch that the user sees every row: transactions and attachments for anyone but a superuser), `pages` is the
  float 0.0 when nothing matched (surprise: Perl's `ceil`), `next_page`/`prev_page` rebuilt from the request's
  query with `page` deleted from the middle, which leaves `&=&` behind (surprise), re-encoded as Perl's URI does.
- history: transactions the user may not see (the EmailRecords of RT's AutoReply and resolve notification, without
  ShowOutgoingEmail) are dropped after paging (surprise): a page can be short, even empty, with more to come.
- search rows carry ids and numbers as strings, except that `fields=id` makes the id a number (surprise);
  a single record has its top-level `id` as a number, everything else (Priority too) as strings.
- dates are `…Z` in UTC; a date never set is `1970-01-01T00:00:00Z`.
- TicketSQL (RT::SQL's grammar and its error messages): `id`, `Queue` (name or id, any case), `Status` (any case),
  `Priority` (a number, or a name translated by PriorityAsString in any case; an unknown name compares as text
  the way SQLite does: never equal, greater than every number), `Subject`, `Created`, `LastUpdated`, `Resolved`
  (dates read in the user's time zone, `timezone`, RT's default US/Eastern; `=` means that whole day; an
  unreadable date is the epoch), with `AND` binding tighter than `OR` and parentheses; an unknown field is 400.
  `orderby`/`order` may repeat; ties keep id order.
- PUT /ticket/<id>: 200 with human messages, fields applied in sorted name order (Priority, Queue, Status); a
  refused field is only a message (surprise): "Permission Denied" for a queue without CreateTicket, "Queue X does
  not exist"; an unchanged value says nothing. Unknown ticket: 404 "Resource does not exist; use POST to create".
- POST /ticket/<id>/comment: 201 `["Comments added"]` with `Location: /REST/2.0/transaction/<id>`; the history
  shows `Comment` with `Data` = the subject and a newline. Unknown ticket: 400 "Message could not be recorded".
- GET /transaction/<id>/attachments: `Parent` among the fields is a 500 with an empty body (surprise); an unknown
  transaction is Plack's 500 text/plain. GET /ticket/<id>/history of an unknown ticket: 200, no items (surprise).
- `_hyperlinks`: a queue's `create` only with CreateTicket; a ticket's `correspond` only with ReplyToTicket,
  `comment` only with CommentOnTicket, `lifecycle` actions (RT's default lifecycle) only with ModifyTicket
  (DeleteTicket for `deleted`).
- ids: a ticket create takes 6 transaction ids (4 role groups, Create, the AutoReply's EmailRecord; 7 with a new
  requestor) and 4 attachment ids, as RT's do, so the recorded ids come out the same.

Behind the connector's back: `create_ticket`, `human_move`, `close`, `queue_of`, `priority_of`, `writes`,
`comments`, `grant`/`revoke`, `hide`/`reveal` (a ticket whose insert has not committed yet), `fail_next`
(503 or a dropped connection), and a clock (`now`, `set_time`, `tick`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx

API = "/REST/2.0"
URL = "http://rt.test"
LOGIN = "/NoAuth/Login.html"
SESSION_COOKIE = "RT_SID_ticketd-test.80"  # RT_SID_<rtname>.<port>
VERSION = "5.0.3+dfsg-3~deb12u7"
START = datetime(2026, 12, 7, 21, 0, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROOT = "root"
AGENT = "ticketd"
AGENT_PASSWORD = "ticketd-fake-pw"
ROOT_PASSWORD = "root-fake-pw"
AGENT_TOKEN = "1-27-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CUSTOMER = "customer@ticketd.test"
QUEUES = ("Raw", "Billing", "Misc", "Hardware", "Technical Support")  # the agent has CreateTicket here
NO_CREATE_QUEUE = "Archive"
AGENT_RIGHTS = frozenset({"SeeQueue", "ShowTicket", "ShowTicketComments", "ModifyTicket", "CommentOnTicket"})
# The last transaction on each queue after start_rt's set-up: the queue's ETag.
QUEUE_ETAGS = {1: 16, 2: 21, 3: 33, 4: 38, 5: 43, 6: 48, 7: 53, 8: 58}
FIRST_TRANSACTION = 59  # the next transaction id after start_rt's set-up (its first ticket's Create is 64)
PRIORITY_AS_STRING = {"Low": 0, "Medium": 50, "High": 100}  # RT 5's default %PriorityAsString
STATUSES = ("new", "open", "stalled", "resolved", "rejected", "deleted")
INACTIVE = frozenset({"resolved", "rejected", "deleted"})
# RT's default lifecycle, `actions`, in order: (from, to, label, update).
ACTIONS = (
    ("new", "open", "Open It", "Respond"),
    ("new", "resolved", "Resolve", "Comment"),
    ("new", "rejected", "Reject", "Respond"),
    ("new", "deleted", "Delete", None),
    ("open", "stalled", "Stall", "Comment"),
    ("open", "resolved", "Resolve", "Comment"),
    ("open", "rejected", "Reject", "Respond"),
    ("stalled", "open", "Open It", None),
    ("resolved", "open", "Re-open", "Comment"),
    ("rejected", "open", "Re-open", "Comment"),
    ("deleted", "open", "Undelete", None),
)
JSON_OK = 'application/json; charset="utf-8"'  # what RT's resources send
JSON_ERROR = "application/json; charset=utf-8"  # what error_as_json (and POST /ticket) sends
TICKETS_PM = " at /usr/share/request-tracker5/lib/RT/Tickets.pm line 3208.\n"
NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def iso(value: datetime | None) -> str:
    """REST 2's date form; RT's "never" is the epoch."""
    return (value or EPOCH).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_clock(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- data ---------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer (also what tests.support.fakes.http.serve sends)."""

    status: int
    content_type: str
    body: bytes = b""
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def headers(self) -> list[tuple[str, str]]:
        typed = [("Content-Type", self.content_type)] if self.content_type else []  # "": no Content-Type at all
        return [*typed, *self.extra, ("Content-Length", str(len(self.body)))]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Drop:
    """No answer at all: the connection closes (`status` None tells tests.support.fakes.http.serve)."""

    status: None = None
    raw: bytes = b""


@dataclass
class Queue:
    id: int
    name: str
    created: datetime
    etag: int
    description: str = ""
    disabled: str = "0"
    lifecycle: str = "default"


@dataclass
class Attachment:
    id: int
    content_type: str
    content: str
    filename: str = ""


@dataclass
class Transaction:
    id: int
    ticket_id: int
    type: str
    creator: str
    created: datetime
    field: str = ""
    old: str = ""
    new: str = ""
    data: str = ""
    attachments: list[Attachment] = dataclasses.field(default_factory=list)

    @property
    def right(self) -> str:
        """The right that shows this transaction (besides ShowTicket)."""
        return {"EmailRecord": "ShowOutgoingEmail", "Comment": "ShowTicketComments"}.get(self.type, "ShowTicket")


@dataclass
class Ticket:
    id: int
    subject: str
    queue_id: int
    creator: str
    created: datetime
    requestors: list[str]
    priority: int | str = 0  # text only when a create sent a name: SQLite keeps it (RT's trap)
    initial_priority: int | str = 0
    status: str = "new"
    last_updated: datetime = START
    last_updated_by: str = ROOT
    started: datetime | None = None
    resolved: datetime | None = None
    visible: bool = True  # False: inserted but not committed yet (see FakeRT.hide)


@dataclass
class Seen:
    """A request as it reached the fake, and its status (None: dropped)."""

    method: str
    path: str
    query: str
    user: str | None
    status: int | None


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class QueryError(Exception):
    """TicketSQL RT refuses: 400 with RT's message."""


# ---- the fake -----------------------------------------------------------------------------------------------


class FakeRT:
    """One RT in memory. `timezone`: the agent's (and RT's) time zone, in which TicketSQL reads dates."""

    def __init__(
        self,
        *,
        url: str = URL,
        timezone: str = "US/Eastern",
        now: datetime | str = START,
        initialized_at: datetime | str | None = None,
        data_loaded_at: datetime | str | None = None,
        agent_password: str = AGENT_PASSWORD,
        root_password: str = ROOT_PASSWORD,
        token: str = AGENT_TOKEN,
    ) -> None:
        self.url = url.rstrip("/")
        self.timezone = timezone
        self.now = parse_clock(now)
        self.lock = threading.RLock()
        # rt-setup-database's init makes General and ___Approvals; the insert of start_rt's data the other queues.
        made = parse_clock(initialized_at) if initialized_at is not None else self.now - timedelta(minutes=5)
        loaded = parse_clock(data_loaded_at) if data_loaded_at is not None else made
        self.queues: dict[int, Queue] = {
            1: Queue(1, "General", made, QUEUE_ETAGS[1], description="The default queue"),
            2: Queue(
                2,
                "___Approvals",
                made,
                QUEUE_ETAGS[2],
                description="A system-internal queue for the approvals system",
                disabled="2",
                lifecycle="approvals",
            ),
        }
        for name in (*QUEUES, NO_CREATE_QUEUE):
            self.add_queue(name, created=loaded)
        self.passwords = {AGENT: agent_password, ROOT: root_password}
        self.tokens = {token: AGENT}
        # Web sessions from RT's login form (session id -> user, None for an anonymous one), and every bcrypt RT
        # would run: one per login and per call authenticated by password or token, none for a session cookie.
        self.sessions: dict[str, str | None] = {}
        self.password_checks = 0
        self.superusers = {ROOT}
        self.rights: dict[tuple[str, int | None], set[str]] = {(AGENT, None): set(AGENT_RIGHTS)}
        for name in QUEUES:
            self.grant(AGENT, "CreateTicket", queue=name)
        self.users = {ROOT, AGENT, "Nobody", "RT_System"}
        self.tickets: dict[int, Ticket] = {}
        self.transactions: dict[int, Transaction] = {}
        self.requests: list[Seen] = []
        self._next_transaction = FIRST_TRANSACTION
        self._next_attachment = 1
        self._failures: list[tuple[str, str | None, str | None]] = []

    # ---- clock --------------------------------------------------------------------------------------------

    def set_time(self, value: datetime | str) -> None:
        self.now = parse_clock(value)

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    # ---- set-up and rights --------------------------------------------------------------------------------

    def add_queue(self, name: str, *, created: datetime | None = None) -> int:
        qid = max(self.queues) + 1
        self.queues[qid] = Queue(qid, name, created or self.now, QUEUE_ETAGS.get(qid, 0))
        return qid

    def grant(self, user: str, right: str, *, queue: str | None = None) -> None:
        key = (user, self._queue_by_name(queue).id if queue is not None else None)
        self.rights.setdefault(key, set()).add(right)

    def revoke(self, user: str, right: str, *, queue: str | None = None) -> None:
        """Take a right away (globally, or where it was granted on one queue)."""
        key = (user, self._queue_by_name(queue).id if queue is not None else None)
        self.rights.get(key, set()).discard(right)

    def has_right(self, user: str, right: str, queue_id: int | None) -> bool:
        if user in self.superusers:
            return True
        return right in self.rights.get((user, None), set()) or (
            queue_id is not None and right in self.rights.get((user, queue_id), set())
        )

    # ---- behind the connector's back ----------------------------------------------------------------------

    def create_ticket(
        self,
        subject: str,
        body: str,
        *,
        queue: str = "Raw",
        content_type: str = "text/plain",
        requestor: str = CUSTOMER,
        priority: int = 0,
        by: str = ROOT,
        hidden: bool = False,
    ) -> int:
        """A customer's mail, as root's POST /ticket makes it; `hidden`: not visible until `reveal` (late commit)."""
        with self.lock:
            ticket = self._create(
                {
                    "Queue": queue,
                    "Subject": subject,
                    "Content": body,
                    "ContentType": content_type,
                    "Requestor": requestor,
                    "Priority": priority,
                },
                by,
            )
            ticket.visible = not hidden
            return ticket.id

    def hide(self, ticket_id: int) -> None:
        """The ticket is there (its id taken) but invisible, as a row whose insert has not committed yet."""
        with self.lock:
            self.tickets[ticket_id].visible = False

    def reveal(self, ticket_id: int) -> None:
        """The late insert commits: searches and reads see the ticket from now on."""
        with self.lock:
            self.tickets[ticket_id].visible = True

    def human_move(self, ticket_id: int, queue: str, *, by: str = ROOT) -> list[str]:
        with self.lock:
            return self._update(self.tickets[ticket_id], {"Queue": queue}, by)

    def close(
        self,
        ticket_id: int,
        *,
        queue: str | None = None,
        priority: int | str | None = None,
        status: str = "resolved",
        by: str = ROOT,
    ) -> list[str]:
        """A human files the ticket and resolves it in one PUT, as the harness does on a real RT."""
        fields: dict[str, Any] = {"Status": status}
        if queue is not None:
            fields["Queue"] = queue
        if priority is not None:
            fields["Priority"] = priority
        with self.lock:
            return self._update(self.tickets[ticket_id], fields, by)

    def queue_of(self, ticket_id: int) -> str:
        return self.queues[self.tickets[ticket_id].queue_id].name

    def priority_of(self, ticket_id: int) -> int | str:
        """The number RT stores (text only after a create that sent a name)."""
        return self.tickets[ticket_id].priority

    def status_of(self, ticket_id: int) -> str:
        return self.tickets[ticket_id].status

    def history(self, ticket_id: int) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.ticket_id == ticket_id]

    def writes(self, ticket_id: int, *, user: str = AGENT) -> int:
        """Transactions the agent made on the ticket: queue and priority changes, comments."""
        return sum(t.creator == user for t in self.history(ticket_id))

    def comments(self, ticket_id: int, *, user: str = AGENT) -> list[str]:
        """The text of the agent's comments on the ticket."""
        return [
            a.content
            for t in self.history(ticket_id)
            if t.type == "Comment" and t.creator == user
            for a in t.attachments
        ]

    def fail_next(
        self,
        calls: int = 1,
        *,
        kind: Literal["503", "drop"] = "503",
        retry_after: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next `calls` requests (those whose path matches the regex `path`, if given) fail: a proxy's 503
        page (with `Retry-After` if given), or a dropped connection (httpx raises RemoteProtocolError, as when a
        server closes without answering)."""
        self._failures.extend([(kind, retry_after, path)] * calls)

    # ---- transports ---------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._httpx_handler)

    def _httpx_handler(self, request: httpx.Request) -> httpx.Response:
        answer = self.handle(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        if isinstance(answer, Drop):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)

    # ---- the server ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply | Drop:
        """One exchange; `path` is the full path (with /REST/2.0), `query` the raw query string."""
        with self.lock:
            seen = Seen(method, path, query, None, None)
            self.requests.append(seen)
            failure = next((f for f in self._failures if f[2] is None or re.search(f[2], path)), None)
            if failure is not None:
                self._failures.remove(failure)
                kind, retry_after, _ = failure
                if kind == "drop":
                    return Drop()
                extra = (("Retry-After", retry_after),) if retry_after is not None else ()
                seen.status = 503
                return Reply(503, "text/html", NGINX_503, extra)
            headers = {k.lower(): v for k, v in headers.items()}
            if path == LOGIN and method == "POST":
                answer = self._log_in(body)
                seen.status = answer.status
                return answer
            user = self._authenticate(headers)
            seen.user = user
            if user is None and "cookie" in headers:
                answer = self._login_required(headers)
            elif user is None:
                answer = _error(401, "Unauthorized")
            else:
                try:
                    answer = self._route(method, path, query, body, user)
                except HttpError as err:
                    answer = _error(err.status, err.message)
            seen.status = answer.status
            return answer

    def _session_cookie(self, headers: dict[str, str]) -> str | None:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                return value
        return None

    def _log_in(self, body: bytes) -> Reply:
        """RT's login form: 200 and a session cookie whether or not the password was right (then anonymous)."""
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        user, password = form.get("user", ""), form.get("pass", "")
        self.password_checks += 1
        sid = uuid.uuid4().hex
        self.sessions[sid] = user if self.passwords.get(user) == password else None
        cookie = f"{SESSION_COOKIE}={sid}; path=/; HttpOnly"
        return Reply(200, "text/html; charset=utf-8", b"<html>RT login</html>", (("Set-Cookie", cookie),))

    def _login_required(self, headers: dict[str, str]) -> Reply:
        """RT's answer to a failed REST 2 login from a caller with any cookie ("looks like a browser"): a redirect to
        WebPath's `/`, relative, `Login required` without a Content-Type; and where the cookie names no session RT
        holds, the cookie of a new anonymous one."""
        extra = [("Location", urlsplit(self.url).path.rstrip("/") + "/")]
        if self._session_cookie(headers) not in self.sessions:
            sid = uuid.uuid4().hex
            self.sessions[sid] = None
            extra.append(("Set-Cookie", f"{SESSION_COOKIE}={sid}; path=/; HttpOnly"))
        return Reply(302, "", b"Login required", tuple(extra))

    def end_sessions(self) -> None:
        """What RT's session cleaner (or a restart with another session store) does to every web session."""
        self.sessions.clear()

    def _authenticate(self, headers: dict[str, str]) -> str | None:
        sid = self._session_cookie(headers)
        if sid is not None and self.sessions.get(sid) is not None:
            return self.sessions[sid]
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme:
            self.password_checks += 1
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return login if login in self.passwords and self.passwords[login] == password else None
        if scheme.lower() == "token":
            return self.tokens.get(value.strip())
        return None

    def _route(self, method: str, path: str, query: str, body: bytes, user: str) -> Reply:
        if not path.startswith(API + "/"):
            raise HttpError(404, "Not Found")
        route = path[len(API) :]
        params = parse_qsl(query, keep_blank_values=True)
        table: list[tuple[str, str, Callable[..., Reply]]] = [
            ("GET", r"/rt", lambda: _ok({"Version": VERSION})),
            ("GET", r"/queues/all", lambda: self._queues_all(params, path, query, user)),
            ("GET", r"/queue/(\d+)", lambda qid: self._queue(int(qid), user)),
            ("GET", r"/tickets", lambda: self._search(params, path, query, user)),
            ("POST", r"/ticket", lambda: self._post_ticket(_json_body(body), user)),
            ("GET", r"/ticket/(\d+)", lambda tid: self._get_ticket(int(tid), user)),
            ("PUT", r"/ticket/(\d+)", lambda tid: self._put_ticket(int(tid), _json_body(body), user)),
            ("POST", r"/ticket/(\d+)/comment", lambda tid: self._comment(int(tid), _json_body(body), user)),
            ("GET", r"/ticket/(\d+)/history", lambda tid: self._history(int(tid), params, path, query, user)),
            (
                "GET",
                r"/transaction/(\d+)/attachments",
                lambda xid: self._attachments(int(xid), params, path, query, user),
            ),
        ]
        allowed = False
        for verb, pattern, action in table:
            match = re.fullmatch(pattern, route)
            if match is None:
                continue
            if verb == method:
                return action(*match.groups())
            allowed = True
        raise HttpError(405 if allowed else 404, "Method Not Allowed" if allowed else "Not Found")

    # ---- queues -------------------------------------------------------------------------------------------

    def _queue_by_name(self, name: str | int | None) -> Queue:
        found = self._find_queue(name)
        if found is None:
            raise KeyError(f"no queue {name!r}")
        return found

    def _find_queue(self, ref: str | int | None) -> Queue | None:
        """RT's Queue->Load: an id, or a name in any case."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.queues.get(int(ref))
        if isinstance(ref, str):
            return next((q for q in self.queues.values() if q.name.lower() == ref.lower()), None)
        return None

    def _queues_all(self, params: list[tuple[str, str]], path: str, query: str, user: str) -> Reply:
        listed = sorted((q for q in self.queues.values() if q.disabled == "0"), key=lambda q: (q.name, q.id))
        fields = _fields(params)

        def row(q: Queue) -> dict[str, Any]:
            out: dict[str, Any] = {"type": "queue", "id": str(q.id), "_url": self._url("queue", q.id)}
            values = {"Name": q.name, "Description": q.description, "Lifecycle": q.lifecycle, "Disabled": q.disabled}
            out.update({f: values[f] for f in fields if f in values})
            return out

        see_all = self.has_right(user, "SeeQueue", None)
        return self._collection(
            listed,
            params,
            path,
            query,
            total_known=see_all,
            visible=lambda q: self.has_right(user, "SeeQueue", q.id),
            render=row,
        )

    def _queue(self, qid: int, user: str) -> Reply:
        queue = self.queues.get(qid)
        if queue is None:
            raise HttpError(404, "Not Found")
        if not self.has_right(user, "SeeQueue", qid):
            raise HttpError(403, "Forbidden")
        links: list[dict[str, Any]] = [
            {"ref": "self", "id": qid, "type": "queue", "_url": self._url("queue", qid)},
            {"ref": "history", "_url": self._url("queue", qid) + "/history"},
        ]
        if self.has_right(user, "CreateTicket", qid):
            links.append({"ref": "create", "type": "ticket", "_url": f"{self.url}{API}/ticket?Queue={qid}"})
        record = {
            "id": qid,
            "Name": queue.name,
            "Description": queue.description,
            "Lifecycle": queue.lifecycle,
            "Disabled": queue.disabled,
            "SortOrder": "0",
            "SLADisabled": "1",
            "CommentAddress": "",
            "CorrespondAddress": "",
            "Created": iso(queue.created),
            "LastUpdated": iso(queue.created),
            "Creator": self._user_ref("RT_System"),
            "LastUpdatedBy": self._user_ref("RT_System"),
            "Cc": [],
            "AdminCc": [],
            "CustomFields": [],
            "TicketCustomFields": [],
            "TicketTransactionCustomFields": [],
            "_hyperlinks": links,
        }
        extra = (("ETag", f'"{queue.etag}"'), ("Last-Modified", iso(queue.created)))
        return _ok(record, extra=extra)

    # ---- tickets ------------------------------------------------------------------------------------------

    def _visible_ticket(self, tid: int) -> Ticket | None:
        ticket = self.tickets.get(tid)
        return ticket if ticket is not None and ticket.visible else None

    def _search(self, params: list[tuple[str, str]], path: str, query: str, user: str) -> Reply:
        sql = next((v for k, v in params if k == "query"), "")
        try:
            match = TicketSQL(sql, self).compile()
        except QueryError as err:
            raise HttpError(400, str(err)) from None
        rows = [
            t
            for t in sorted(self.tickets.values(), key=lambda t: t.id)
            if t.visible and self.has_right(user, "ShowTicket", t.queue_id) and match(t)
        ]
        orders = [v for k, v in params if k == "order"]
        keys = [
            (v, (orders[i] if i < len(orders) else "ASC").upper() == "DESC")
            for i, v in enumerate(v for k, v in params if k == "orderby")
        ]
        for name, descending in reversed(keys):
            rows.sort(key=functools.partial(_sort_key, name=name, fake=self), reverse=descending)
        fields = _fields(params)
        return self._collection(
            rows, params, path, query, total_known=True, visible=None, render=lambda t: self._ticket_row(t, fields)
        )

    def _ticket_row(self, ticket: Ticket, fields: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"type": "ticket", "id": str(ticket.id), "_url": self._url("ticket", ticket.id)}
        values = self._ticket_values(ticket)
        for name in fields:
            if name == "id":
                row["id"] = ticket.id  # expand_field gives the number (surprise)
            elif name in values:
                row[name] = values[name]
        return row

    def _ticket_values(self, ticket: Ticket) -> dict[str, Any]:
        return {
            "Subject": ticket.subject,
            "Status": ticket.status,
            "Priority": str(ticket.priority),
            "InitialPriority": str(ticket.initial_priority),
            "FinalPriority": "0",
            "Queue": {"type": "queue", "id": str(ticket.queue_id), "_url": self._url("queue", ticket.queue_id)},
            "Owner": self._user_ref("Nobody"),
            "Creator": self._user_ref(ticket.creator),
            "LastUpdatedBy": self._user_ref(ticket.last_updated_by),
            "Requestor": [self._user_ref(r) for r in ticket.requestors],
            "Cc": [],
            "AdminCc": [],
            "Created": iso(ticket.created),
            "LastUpdated": iso(ticket.last_updated),
            "Resolved": iso(ticket.resolved),
            "Started": iso(ticket.started),
            "Starts": iso(None),
            "Due": iso(None),
            "TimeEstimated": "0",
            "TimeWorked": "0",
            "TimeLeft": "0",
            "Type": "ticket",
            "EffectiveId": {"type": "ticket", "id": str(ticket.id), "_url": self._url("ticket", ticket.id)},
            "CustomFields": [],
        }

    def _get_ticket(self, tid: int, user: str) -> Reply:
        ticket = self._visible_ticket(tid)
        if ticket is None:
            raise HttpError(404, "Not Found")
        if not self.has_right(user, "ShowTicket", ticket.queue_id):
            raise HttpError(403, "Forbidden")
        record = {"id": tid, **self._ticket_values(ticket), "_hyperlinks": self._ticket_links(ticket, user)}
        seen = [t.id for t in self.history(tid) if self._may_see(user, t, ticket)]
        extra = (("ETag", f'"{seen[-1] if seen else 0}"'), ("Last-Modified", iso(ticket.last_updated)))
        return _ok(record, extra=extra)

    def _ticket_links(self, ticket: Ticket, user: str) -> list[dict[str, Any]]:
        me = self._url("ticket", ticket.id)
        links: list[dict[str, Any]] = [
            {"ref": "self", "id": ticket.id, "type": "ticket", "_url": me},
            {"ref": "history", "_url": me + "/history"},
        ]
        if self.has_right(user, "ReplyToTicket", ticket.queue_id):
            links.append({"ref": "correspond", "_url": me + "/correspond"})
        if self.has_right(user, "CommentOnTicket", ticket.queue_id):
            links.append({"ref": "comment", "_url": me + "/comment"})
        for start, end, label, update in ACTIONS:
            right = "DeleteTicket" if end == "deleted" else "ModifyTicket"
            if start != ticket.status or not self.has_right(user, right, ticket.queue_id):
                continue
            suffix = {"Respond": "/correspond", "Comment": "/comment"}.get(update or "", "")
            link: dict[str, Any] = {"from": start, "to": end, "label": label}
            if update:
                link["update"] = update
            links.append({**link, "ref": "lifecycle", "_url": me + suffix})
        return links

    def _post_ticket(self, body: Any, user: str) -> Reply:
        if not isinstance(body, dict):
            raise HttpError(400, "JSON object required")
        queue = self._find_queue(body.get("Queue"))
        if queue is None:
            raise HttpError(400, "Could not create ticket. Queue not set")
        if not self.has_right(user, "CreateTicket", queue.id):
            raise HttpError(403, f"No permission to create tickets in the queue '{body.get('Queue')}'")
        ticket = self._create(body, user)
        location = (("Location", f"{API}/ticket/{ticket.id}"),)
        answer = {"id": str(ticket.id), "type": "ticket", "_url": self._url("ticket", ticket.id)}
        return Reply(201, JSON_ERROR, json.dumps(answer, separators=(",", ":")).encode(), location)

    def _put_ticket(self, tid: int, body: Any, user: str) -> Reply:
        ticket = self._visible_ticket(tid)
        if ticket is None:
            raise HttpError(404, "Resource does not exist; use POST to create")
        if not self.has_right(user, "ModifyTicket", ticket.queue_id):
            raise HttpError(403, "Forbidden")
        if not isinstance(body, dict):
            raise HttpError(400, "JSON object required")
        return _ok(self._update(ticket, body, user), pretty=False)

    def _comment(self, tid: int, body: Any, user: str) -> Reply:
        if not isinstance(body, dict) or not body.get("ContentType"):
            raise HttpError(400, "ContentType is a required field for application/json")
        ticket = self._visible_ticket(tid)
        if ticket is None:
            raise HttpError(400, "Message could not be recorded")
        if not self.has_right(user, "CommentOnTicket", ticket.queue_id):
            raise HttpError(400, "Permission Denied")
        subject = str(body.get("Subject") or "")
        txn = self._transaction(
            ticket,
            "Comment",
            user,
            data=subject + "\n" if subject else "",
            attachments=[(str(body["ContentType"]), str(body.get("Content") or ""))],
        )
        location = (("Location", f"{API}/transaction/{txn.id}"),)
        return _ok(["Comments added"], extra=location, status=201)

    # ---- history and attachments --------------------------------------------------------------------------

    def _may_see(self, user: str, txn: Transaction, ticket: Ticket) -> bool:
        return (
            ticket.visible
            and self.has_right(user, "ShowTicket", ticket.queue_id)
            and self.has_right(user, txn.right, ticket.queue_id)
        )

    def _history(self, tid: int, params: list[tuple[str, str]], path: str, query: str, user: str) -> Reply:
        ticket = self.tickets.get(tid)
        txns = self.history(tid) if ticket is not None and ticket.visible else []
        fields = _fields(params)

        def row(txn: Transaction) -> dict[str, Any]:
            out: dict[str, Any] = {"type": "transaction", "id": str(txn.id), "_url": self._url("transaction", txn.id)}
            values = {
                "Type": txn.type,
                "Field": txn.field,
                "OldValue": txn.old,
                "NewValue": txn.new,
                "Data": txn.data,
                "Creator": self._user_ref(txn.creator),
                "Created": iso(txn.created),
                "ObjectType": "RT::Ticket",
                "TimeTaken": "0",
            }
            out.update({f: values[f] for f in fields if f in values})
            return out

        assert ticket is not None or not txns
        return self._collection(
            txns,
            params,
            path,
            query,
            total_known=user in self.superusers,
            visible=lambda t: ticket is not None and self._may_see(user, t, ticket),
            render=row,
        )

    def _attachments(self, xid: int, params: list[tuple[str, str]], path: str, query: str, user: str) -> Reply:
        txn = self.transactions.get(xid)
        ticket = self.tickets.get(txn.ticket_id) if txn is not None else None
        if txn is None or ticket is None or not ticket.visible:
            return Reply(500, "text/plain", b"Internal Server Error")  # RT dies loading it; Plack answers
        fields = _fields(params)
        if "Parent" in fields:
            return Reply(500, JSON_OK, b"")  # RT 5.0.3 dies expanding Parent, after the headers were set

        def row(a: Attachment) -> dict[str, Any]:
            out: dict[str, Any] = {"type": "attachment", "id": str(a.id), "_url": self._url("attachment", a.id)}
            values = {
                "ContentType": a.content_type,
                "Content": a.content,
                "Filename": a.filename,
                "TransactionId": {"type": "transaction", "id": str(txn.id), "_url": self._url("transaction", txn.id)},
            }
            out.update({f: values[f] for f in fields if f in values})
            return out

        return self._collection(
            txn.attachments,
            params,
            path,
            query,
            total_known=user in self.superusers,
            visible=lambda a: self._may_see(user, txn, ticket),
            render=row,
        )

    # ---- collections --------------------------------------------------------------------------------------

    def _collection(
        self,
        rows: list[Any],
        params: list[tuple[str, str]],
        path: str,
        query: str,
        *,
        total_known: bool,
        visible: Callable[[Any], bool] | None,
        render: Callable[[Any], dict[str, Any]],
    ) -> Reply:
        """RT::REST2::Resource::Collection: page first, then drop what the user may not see (RT's ACL in Next)."""
        per_page = _number_param(params, "per_page", 20)
        per_page = min(per_page, 100)
        page = _number_param(params, "page", 1)
        chunk = rows[(page - 1) * per_page : page * per_page]
        items = [render(r) for r in chunk if visible is None or visible(r)]
        result: dict[str, Any] = {"count": len(items), "page": page, "per_page": per_page, "items": items}
        total = len(rows) if total_known else None
        result["total"] = total
        pages: int | float | None = None
        if total is not None:
            pages = math.ceil(total / per_page) if total else 0.0  # Perl's ceil(0) goes out as 0.0
        result["pages"] = pages
        if pages:
            base = f"{self.url}{path}?"
            if page < pages:
                result["next_page"] = base + _page_query(query, page + 1)
            if page > 1:
                result["prev_page"] = base + _page_query(query, min(page - 1, int(pages)))
        return _ok(result)

    # ---- writing ------------------------------------------------------------------------------------------

    def _take_transaction_id(self) -> int:
        self._next_transaction += 1
        return self._next_transaction - 1

    def _transaction(
        self,
        ticket: Ticket,
        kind: str,
        user: str,
        *,
        field: str = "",
        old: str = "",
        new: str = "",
        data: str = "",
        attachments: Iterable[tuple[str, str]] = (),
        touch: bool = True,
    ) -> Transaction:
        txn = Transaction(self._take_transaction_id(), ticket.id, kind, user, self.now, field, old, new, data)
        for content_type, content in attachments:
            txn.attachments.append(Attachment(self._next_attachment, content_type, content))
            self._next_attachment += 1
        self.transactions[txn.id] = txn
        if touch:
            ticket.last_updated = self.now
            ticket.last_updated_by = user
        return txn

    def _email_record(self, ticket: Ticket) -> None:
        """A scrip's mail (AutoReply on create, the notice on resolve): RT records it with three attachments."""
        message_id = f"<rt-5.0.3-fake-{ticket.id}-{self._next_transaction}-0@ticketd.test>"
        parts = [("multipart/alternative", ""), ("text/plain", ""), ("text/html", "")]
        self._transaction(ticket, "EmailRecord", "RT_System", data=message_id, attachments=parts, touch=False)

    def _create(self, body: dict[str, Any], user: str) -> Ticket:
        queue = self._find_queue(body.get("Queue"))
        if queue is None:
            raise KeyError(f"no queue {body.get('Queue')!r}")
        raw = body.get("Requestor") or []
        requestors = [raw] if isinstance(raw, str) else [str(r) for r in raw]
        self._next_transaction += 4  # the ticket's role groups (Requestor, Cc, AdminCc, Owner) are created first
        for email in requestors:
            if email not in self.users:
                self.users.add(email)
                self._take_transaction_id()  # RT creates the requestor's user
        priority = _stored_priority(body.get("Priority", 0))
        initial = _stored_priority(body.get("InitialPriority", 0))
        status = str(body.get("Status") or "new").lower()
        tid = max(self.tickets, default=0) + 1
        ticket = Ticket(
            tid,
            str(body.get("Subject") or ""),
            queue.id,
            user,
            self.now,
            requestors,
            priority,
            initial,
            status,
            self.now,
            user,
        )
        if status != "new":
            ticket.started = self.now
        if status in INACTIVE:
            ticket.resolved = self.now
        self.tickets[tid] = ticket
        content = body.get("Content")
        parts = [(str(body.get("ContentType") or "text/plain"), str(content))] if content is not None else []
        self._transaction(ticket, "Create", user, attachments=parts)
        self._email_record(ticket)
        return ticket

    def _update(self, ticket: Ticket, body: dict[str, Any], user: str) -> list[str]:
        """RT::Record::Update: writable fields in sorted order, each one's message; refusals are only messages."""
        label = f"Ticket {ticket.id}:"
        results: list[str] = []
        for name in sorted(body):
            value = body[name]
            if name == "Priority":
                results += [f"{label} {m}" for m in self._set_priority(ticket, value, user)]
            elif name == "Queue":
                results += [f"{label} {m}" for m in self._set_queue(ticket, value, user)]
            elif name == "Status":
                results += [f"{label} {m}" for m in self._set_status(ticket, value, user)]
        return results

    def _set_priority(self, ticket: Ticket, value: Any, user: str) -> list[str]:
        if str(value) == str(ticket.priority):
            return []
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            number = int(value)
        else:
            number = PRIORITY_AS_STRING.get(str(value), 0)  # an unknown name silently becomes 0
        if number == ticket.priority:
            return ["That is already the current value"]
        old = ticket.priority
        ticket.priority = number
        self._transaction(ticket, "Set", user, field="Priority", old=str(old), new=str(number))
        return [f"Priority changed from '{_priority_label(old)}' to '{_priority_label(number)}'"]

    def _set_queue(self, ticket: Ticket, value: Any, user: str) -> list[str]:
        current = self.queues[ticket.queue_id]
        if str(value) in (current.name, str(current.id)):
            return []
        new = self._find_queue(value if isinstance(value, str | int) else None)
        if new is None:
            return [f"Queue {value} does not exist"]
        if new.disabled != "0":
            return [f"Queue {current.name} is disabled"]
        if new.id == current.id:
            return [f"Queue is already set to {current.name}"]
        if not self.has_right(user, "CreateTicket", new.id):
            return ["Permission Denied"]
        ticket.queue_id = new.id
        self._transaction(ticket, "Set", user, field="Queue", old=str(current.id), new=str(new.id))
        return [f"Queue changed from {current.name} to {new.name}"]

    def _set_status(self, ticket: Ticket, value: Any, user: str) -> list[str]:
        new = str(value).lower()
        if new == ticket.status:
            return []
        if new not in STATUSES:
            return [f"Status '{value}' isn't a valid status for this ticket."]
        right = "DeleteTicket" if new == "deleted" else "ModifyTicket"
        if not self.has_right(user, right, ticket.queue_id):
            return ["Permission Denied"]
        old = ticket.status
        ticket.status = new
        if new != "new" and ticket.started is None:
            ticket.started = self.now
        if new in INACTIVE:
            ticket.resolved = self.now
        self._transaction(ticket, "Status", user, field="Status", old=old, new=new)
        if new == "resolved":
            self._email_record(ticket)  # the scrip "On Resolve Notify Requestors"
        return [f"Status changed from '{old}' to '{new}'"]

    # ---- helpers ------------------------------------------------------------------------------------------

    def _url(self, kind: str, rid: int | str) -> str:
        return f"{self.url}{API}/{kind}/{rid}"

    def _user_ref(self, name: str) -> dict[str, str]:
        return {"type": "user", "id": name, "_url": self._url("user", name)}


# ---- TicketSQL ------------------------------------------------------------------------------------------------

_AGGREG = r"(?i:AND|OR)"
_DELIM = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_OP = (
    r"(?i:SHALLOW )?(?:=|!=|>=|<=|>|<|(?i:IS NOT)|(?i:IS)|(?i:NOT LIKE)|(?i:LIKE)|(?i:NOT STARTSWITH)"
    r"|(?i:STARTSWITH)|(?i:NOT ENDSWITH)|(?i:ENDSWITH))"
)
_VALUE = rf"[\w\.]+|[+-]?\d+|(?i:NULL)|{_DELIM}"
_KEYWORD = rf"[{{}}\w\.]+|{_DELIM}"
_TOKEN = re.compile(rf"({_AGGREG}|{_OP}|{_KEYWORD}|{_VALUE}|\(|\))")
VALUE, AGGREG, OP, OPEN_PAREN, CLOSE_PAREN, KEYWORD = 1, 2, 4, 8, 16, 32
_TOKEN_NAMES = ("VALUE", "AGGREGATOR", "OPERATOR", "OPEN_PAREN", "CLOSE_PAREN", "KEYWORD")
FIELDS = {
    "id": "id",
    "queue": "Queue",
    "status": "Status",
    "priority": "Priority",
    "subject": "Subject",
    "created": "Created",
    "lastupdated": "LastUpdated",
    "resolved": "Resolved",
    "started": "Started",
}
Match = Callable[[Ticket], bool]


def _bitmask(mask: int) -> str:
    names = [n for i, n in enumerate(_TOKEN_NAMES) if mask & (1 << i)]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


class TicketSQL:
    """RT::SQL::Parse's state machine (same tokens, same messages), compiled to a predicate over tickets."""

    def __init__(self, text: str, fake: FakeRT) -> None:
        self.text = text
        self.fake = fake

    def compile(self) -> Match:
        want, last, depth = KEYWORD | OPEN_PAREN, 0, 0
        stack: list[list[Any]] = [[]]
        key = op = ""
        for found in _TOKEN.finditer(self.text):
            token = found.group(1)
            current = 0
            for kind, pattern in (
                (OP, _OP),
                (VALUE, _VALUE),
                (KEYWORD, _KEYWORD),
                (AGGREG, _AGGREG),
                (OPEN_PAREN, r"\("),
                (CLOSE_PAREN, r"\)"),
            ):
                if want & kind and re.fullmatch(pattern, token):
                    current = kind
            if not (current and want & current):
                here = self.text[: found.start(1)] + ">" + token + "<--here" + self.text[found.end(1) :]
                raise QueryError(f"Wrong query, expecting a {_bitmask(want)} in '{here}'{TICKETS_PM}")
            if current == OPEN_PAREN:
                stack.append([])
                depth += 1
                want = KEYWORD | OPEN_PAREN
            elif current == CLOSE_PAREN:
                group = stack.pop()
                stack[-1].append(_combine(group))
                depth -= 1
                want = AGGREG | (CLOSE_PAREN if depth else 0)
            elif current == AGGREG:
                stack[-1].append(token.upper())
                want = KEYWORD | OPEN_PAREN
            elif current == KEYWORD:
                key, want = token, OP
            elif current == OP:
                op, want = token.upper(), VALUE
            else:
                quoted = re.fullmatch(_DELIM, token) is not None
                value = re.sub(r"\\(.)", r"\1", token[1:-1] if quoted else token)
                stack[-1].append(self._condition(key, op, value))
                want = AGGREG | (CLOSE_PAREN if depth else 0)
            last = current
        if last and not last & (CLOSE_PAREN | VALUE):
            raise QueryError(
                f"Incomplete query, last element ({_bitmask(last)}) is not close paren or value in '{self.text}'"
                + TICKETS_PM
            )
        if depth:
            parens = "unclosed paren" if depth == 1 else "unclosed parens"
            raise QueryError(f"Incomplete query, {depth} {parens} in '{self.text}'{TICKETS_PM}")
        return _combine(stack[0]) if stack[0] else (lambda t: True)

    def _condition(self, key: str, op: str, value: str) -> Match:
        name = FIELDS.get(key.lower())
        if name is None:
            raise QueryError(f"Unknown field: {key}{TICKETS_PM}")
        op = {"<>": "!="}.get(op, op)
        if name in ("Created", "LastUpdated", "Resolved", "Started"):
            return self._date(name, op, value)
        if name == "id":
            return _compare(lambda t: t.id, op, int(value) if re.fullmatch(r"[+-]?\d+", value) else value)
        if name == "Queue":
            queue = self.fake._find_queue(value)
            qid = queue.id if queue is not None else -1
            return _compare(lambda t: t.queue_id, op, qid) if op in ("=", "!=") else (lambda t: False)
        if name == "Status":
            return _compare(lambda t: t.status, op, value.lower())
        if name == "Priority":
            number = next((n for k, n in PRIORITY_AS_STRING.items() if k.lower() == value.lower()), None)
            if number is None and re.fullmatch(r"[+-]?\d+", value.strip()):
                number = int(value)
            return _compare(lambda t: t.priority, op, number if number is not None else value)
        if op in ("LIKE", "NOT LIKE"):
            hit: Match = lambda t: value.lower() in t.subject.lower()  # noqa: E731 - one expression
            return hit if op == "LIKE" else (lambda t: not hit(t))
        return _compare(lambda t: t.subject.lower(), op, value.lower())

    def _date(self, name: str, op: str, value: str) -> Match:
        """RT::Date 'unknown' format in the user's zone; `=` is that whole day; unreadable is the epoch."""
        attr = {"Created": "created", "LastUpdated": "last_updated", "Resolved": "resolved", "Started": "started"}[name]
        zone = ZoneInfo(self.fake.timezone)
        when = EPOCH
        for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                when = datetime.strptime(value.strip(), form).replace(tzinfo=zone).astimezone(UTC)
                break
            except ValueError:
                continue

        def stored(t: Ticket) -> datetime:
            return (getattr(t, attr) or EPOCH).replace(microsecond=0)

        if op == "=":
            start = when.astimezone(zone).replace(hour=0, minute=0, second=0).astimezone(UTC)
            end = (start.astimezone(zone) + timedelta(days=1)).astimezone(UTC)
            return lambda t: start <= stored(t) < end
        return _compare(stored, op, when.replace(microsecond=0))


def _combine(items: list[Any]) -> Match:
    """Conditions joined by AND and OR, AND binding tighter (the SQL RT generates)."""
    alternatives: list[list[Match]] = [[]]
    for item in items:
        if item == "OR":
            alternatives.append([])
        elif item != "AND":
            alternatives[-1].append(item)
    return lambda t: any(all(m(t) for m in group) for group in alternatives)


def _compare(get: Callable[[Ticket], Any], op: str, value: Any) -> Match:
    """SQLite's comparison: numbers sort before text, text never equals a number."""

    def rank(v: Any) -> tuple[int, Any]:
        return (0, v) if isinstance(v, int | float | datetime) else (1, str(v))

    def test(t: Ticket) -> bool:
        a, b = rank(get(t)), rank(value)
        if a[0] == b[0] and isinstance(a[1], datetime) != isinstance(b[1], datetime):
            return False
        checks = {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}
        return checks.get(op, False)

    return test


def _sort_key(ticket: Ticket, name: str, fake: FakeRT) -> Any:
    values: dict[str, Any] = {
        "id": ticket.id,
        "resolved": ticket.resolved or EPOCH,
        "created": ticket.created,
        "lastupdated": ticket.last_updated,
        "started": ticket.started or EPOCH,
        "priority": (0, ticket.priority) if isinstance(ticket.priority, int) else (1, ticket.priority),
        "subject": ticket.subject,
        "status": ticket.status,
        "queue": fake.queues[ticket.queue_id].name,
    }
    value = values.get(name.lower(), ticket.id)
    return value.replace(microsecond=0) if isinstance(value, datetime) else value


# ---- small pieces ---------------------------------------------------------------------------------------------


def _ok(data: Any, *, extra: tuple[tuple[str, str], ...] = (), status: int = 200, pretty: bool = True) -> Reply:
    text = json.dumps(data, indent=3, ensure_ascii=False) + "\n" if pretty else json.dumps(data, separators=(",", ":"))
    return Reply(status, JSON_OK, text.encode("utf-8"), extra)


def _error(status: int, message: str) -> Reply:
    return Reply(status, JSON_ERROR, json.dumps({"message": message}, separators=(",", ":")).encode())


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise HttpError(400, "Malformed JSON") from None


def _fields(params: list[tuple[str, str]]) -> list[str]:
    raw = next((v for k, v in params if k == "fields"), "")
    return [f for f in raw.split(",") if f]


def _number_param(params: list[tuple[str, str]], name: str, default: int) -> int:
    """setup_paging: a missing, non-numeric or zero value is the default."""
    raw = next((v for k, v in params if k == name), "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def _stored_priority(value: Any) -> int | str:
    """What SQLite keeps from a create: a number, or the literal text of a name (RT's trap: send numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def _priority_label(value: int | str) -> str:
    """The PriorityAsString name whose range holds `value`."""
    if not isinstance(value, int):
        return str(value)
    below = [name for name, n in sorted(PRIORITY_AS_STRING.items(), key=lambda kv: kv[1]) if n <= value]
    return below[-1] if below else "Low"


_URIC = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'();/?:@&=+$,[]%")


def _uri_escape(text: str) -> str:
    """URI::_query::query_form's escaping of one key or value, then URI's own for what is not a URI character."""
    text = re.sub(r"[;/?:@&=+,$\[\]%]", lambda m: f"%{ord(m.group()):02X}", text).replace(" ", "+")
    return "".join(c if c in _URIC else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text)


def _page_query(query: str, page: int) -> str:
    """Collection.pm's next/prev link: the request's query with the first `page` deleted (Perl's `delete` on an
    array element leaves an undef pair, written `=`, unless it was the last one) and `page` appended."""
    pairs: list[tuple[str, str] | None] = list(parse_qsl(query, keep_blank_values=True))
    at = next((i for i, p in enumerate(pairs) if p is not None and p[0] == "page"), None)
    if at is not None:
        if at == len(pairs) - 1:
            pairs.pop()
        else:
            pairs[at] = None
    out = [("", "") if p is None else p for p in pairs] + [("page", str(page))]
    return "&".join(f"{_uri_escape(k)}={_uri_escape(v)}" for k, v in out)
