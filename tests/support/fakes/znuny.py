"""An in-memory Znuny 7.0.19 GenericTicketConnectorREST that answers like the recorded server.

Built from `shared/fixtures/znuny-7.0.19` (see its README): HTTP 200 error objects, plain-text 500s,
the 411 fault, dropped connections (605/606), compact sorted JSON, string search ids, `{}` for empty
searches, sessions with expiry. `FakeZnuny.handle` is transport-free so it can also sit behind a real
socket later; `transport()` adapts it to `httpx.MockTransport`.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote
from zoneinfo import ZoneInfo

import httpx

WEBSERVICE = "GenericTicketConnectorREST"
START = "2026-11-22 08:37:45"  # the recordings' clock when 010 was sent
SESSION_MAX_TIME = 57600
SESSION_MAX_IDLE = 7200
SEARCH_LIMIT = 500

JSON_TYPE = "application/json; charset=UTF-8"
TEXT_TYPE = "text/plain; charset=UTF-8"

APACHE_500 = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">\n'
    "<html><head>\n<title>500 Internal Server Error</title>\n</head><body>\n<h1>Internal Server Error</h1>\n"
    "<p>The server encountered an internal error or\nmisconfiguration and was unable to complete\nyour request.</p>\n"
    "<p>Please contact the server administrator at \n [no address given] to inform them of the time this error "
    "occurred,\n and the actions you performed just before this error.</p>\n"
    "<p>More information about this error may be available\nin the server error log.</p>\n</body></html>\n"
)

QUEUES = {
    1: ("Postmaster", 1),
    2: ("Raw", 1),
    3: ("Junk", 1),
    4: ("Misc", 1),
    5: ("Hardware", 1),
    6: ("Billing", 1),
    7: ("Technical Support", 1),
    8: ("Restricted", 5),
}
PRIORITIES = {1: "1 very low", 2: "2 low", 3: "3 normal", 4: "4 high", 5: "5 very high"}
STATES = {
    1: ("new", "new"),
    2: ("closed successful", "closed"),
    3: ("closed unsuccessful", "closed"),
    4: ("open", "open"),
    5: ("removed", "removed"),
    6: ("pending reminder", "pending reminder"),
    7: ("pending auto close+", "pending auto"),
    8: ("pending auto close-", "pending auto"),
    9: ("merged", "merged"),
}
CHANNELS = {"Email": 1, "Phone": 2, "Internal": 3}
SENDER_TYPES = {"agent": "1", "system": "2", "customer": "3"}
DYNAMIC_FIELDS = [
    "ProcessManagementActivityID",
    "ProcessManagementAttachment",
    "ProcessManagementProcessID",
    "TicketCalendarEndTime",
    "TicketCalendarStartTime",
]
HISTORY_TYPES = {
    "NewTicket": 1,
    "AddNote": 15,
    "Move": 16,
    "CustomerUpdate": 21,
    "PriorityUpdate": 22,
    "OwnerUpdate": 23,
    "Misc": 25,
    "SetPendingTime": 26,
    "StateUpdate": 27,
    "TitleUpdate": 32,
}

ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/Session", "SessionCreate"),
    ("GET", "/Session/:SessionID", "SessionGet"),
    ("POST", "/Ticket", "TicketCreate"),
    ("GET", "/Ticket/:TicketID", "TicketGet"),
    ("GET", "/TicketList", "TicketGetList"),
    ("GET", "/TicketHistory/:TicketID", "TicketHistoryGet"),
    ("GET", "/Ticket", "TicketSearch"),
    ("PATCH", "/Ticket/:TicketID", "TicketUpdate"),
]
# The web services of ../shared/znuny: the development sample (above, what the 7.0.19 recordings show), the
# example in the release tree (var/webservices/examples/) and ticketd's own deploy/znuny/ticketd-webservice.yml.
LAYOUTS: dict[str, list[tuple[str, str, str]]] = {
    "development": ROUTES,
    "release": [
        ("POST", "/Session", "SessionCreate"),
        ("GET", "/Session/:SessionID", "SessionGet"),
        ("POST", "/Ticket", "TicketCreate"),
        ("GET", "/Ticket/:TicketID", "TicketGet"),
        ("GET", "/Ticket/History/:TicketID", "TicketHistoryGet"),
        ("POST", "/Ticket/Search", "TicketSearch"),
        ("PATCH", "/Ticket/:TicketID", "TicketUpdate"),
    ],
    "ticketd": [
        ("POST", "/Session", "SessionCreate"),
        ("GET", "/Ticket/:TicketID", "TicketGet"),
        ("POST", "/Ticket/Search", "TicketSearch"),
        ("PATCH", "/Ticket/:TicketID", "TicketUpdate"),
    ],
}
# The HTTP::REST transport's KeepAlive setting in each layout's YAML (the development sample has it off).
KEEP_ALIVE = {"development": False, "release": True, "ticketd": True}
VERSIONS = ("7.0.19", "7.1.7")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass(frozen=True)
class Response:
    """A complete HTTP answer; headers are exactly the three the real server sends."""

    status: int
    content_type: str
    body: bytes
    connection: str = "close"  # "Keep-Alive" from a web service whose HTTP::REST transport has KeepAlive on

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            ("Connection", self.connection),
        ]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Drop:
    """No HTTP answer: `raw` bytes without a status line (605), or nothing at all (606)."""

    kind: Literal["no_status_line", "empty"]
    raw: bytes = b""


@dataclass(frozen=True)
class SeenRequest:
    """What reached the fake, for tests that check where parameters travelled."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class User:
    id: int
    login: str
    password: str
    first: str
    last: str
    email: str
    groups: set[int]
    created: str = "2026-11-22 08:16:02"

    @property
    def fullname(self) -> str:
        return f"{self.first} {self.last}"


@dataclass
class Session:
    id: str
    user_id: int
    start: int
    last_request: int
    user_agent: str


@dataclass
class Attachment:
    content: bytes
    content_type: str
    filename: str
    disposition: str = "attachment"
    html_body: bool = False


@dataclass
class Article:
    fields: dict[str, Any]  # the TicketGet article object, minus attachments
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class HistoryEntry:
    type: str
    name: str
    article_id: int
    create_by: int
    create_time: int
    owner_id: int
    priority_id: int
    queue_id: int
    state_id: int


@dataclass
class Ticket:
    id: int
    number: str
    title: str
    queue_id: int
    priority_id: int
    state_id: int
    customer_user: str | None
    customer_id: str | None
    owner_id: int
    responsible_id: int
    create_by: int
    change_by: int
    created: int
    changed: int
    unlock_timeout: int = 0
    close_times: list[int] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    writes: int = 0


class OperationError(Exception):
    """An operation failure that the server reports as HTTP 200 + Error object."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Fault(Exception):
    """An operation failure without ErrorCode: the provider answers 500 with a JSON faultstring."""


def dumps(obj: Any) -> bytes:
    """The server's encoding: compact, sorted keys, raw UTF-8 (README 4.2)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ticket_number(counter: int, day: str = "20261122", system_id: str = "10") -> str:
    """Ticket::NumberGenerator::DateChecksum."""
    base = f"{day}{system_id}{counter:05d}"
    total, mult = 0, 1
    for ch in base:
        total += mult * int(ch)
        mult = 1 if mult == 2 else mult + 1
    check = 10 - total % 10
    return base + str(1 if check == 10 else check)


def html_to_ascii(text: str) -> str:
    """Znuny's HTML to plain-text conversion, as far as the recordings show it (102 -> 310)."""
    s = re.sub(r"^\s*", "", text, flags=re.M)
    s = re.sub(r"(\n\r|\r\r\n|\r\n)", "\n", s)
    s = re.sub(r"(<br\s?/?>)(\n|\r)", r"\1", s, flags=re.I)
    s = s.replace("\n", " ").replace("\r", " ")
    s = re.sub(r"<style.+?</style>", "", s, flags=re.I | re.S)
    s = re.sub(r"<script.+?</script>", "", s, flags=re.I | re.S)
    blocks: list[str] = []

    def keep(match: re.Match[str]) -> str:
        blocks.append(match.group(3))
        return f"\n\n\x00{len(blocks) - 1}\x00\n\n"

    s = re.sub(r"<(pre|code)(.*?)>(.+?)</(pre|code)(.*?)>", keep, s, flags=re.I | re.S)
    s = re.sub(r"<br(\s{0,3}|\s{1,3}.+?)(/|)>", "\n", s, flags=re.I | re.S)
    s = re.sub(r"</(\s{0,3})div>", "\n", s, flags=re.I)
    s = re.sub(r"<(hr|hr.+?)>", "\n\n", s, flags=re.I | re.S)
    s = re.sub(r"<(/|)(p|p\s.+?|table|table.+?)>", "\n\n", s, flags=re.I | re.S)
    s = re.sub(r"<(tr|tr.+?|th|th.+?)>", "\n\n", s, flags=re.I | re.S)
    s = re.sub(r"<li>", "\n - ", s, flags=re.I)
    s = re.sub(r"</(ul|ol)>", "\n\n", s, flags=re.I)
    s = re.sub(r"</td[^>]*>", " ", s, flags=re.I)
    s = re.sub(r"[ ]{2,10}", " ", s)
    s = re.sub(r"<.+?>", "", s, flags=re.S)
    s = re.sub(r"\x00(\d+)\x00", lambda m: re.sub(r"<.+?>", "", blocks[int(m.group(1))], flags=re.S), s)
    s = html.unescape(s)
    return re.sub(r"^\s*\n\s*\n", "\n", s, flags=re.M)


class FakeZnuny:
    """The server's state and its HTTP behaviour, one request at a time."""

    def __init__(
        self,
        *,
        prefix: str = "znuny",
        webservice: str = WEBSERVICE,
        layout: str = "development",
        webservices: Mapping[str, str] | None = None,
        passwords: Mapping[str, str] | None = None,
        now: str | datetime | float = START,
        server_timezone: str = "UTC",
        seed: int = 0,
        version: str = "7.0.19",
        seeded_at: str | None = None,
    ) -> None:
        """`webservices` (name -> layout) serves several web services over one database, as one Znuny does;
        without it the fake serves `webservice` in `layout`. `version` "7.1.7" answers like the 7.1.7
        recordings (tests/connectors/znuny/fixtures/znuny-7.1.7): a fresh installation whose only ticket is
        the installer's ticket 1, created at `seeded_at` (the server's set-up time; default: `now`)."""
        if version not in VERSIONS:
            raise ValueError(f"version {version!r}: one of {VERSIONS}")
        self.prefix = prefix.strip("/")
        self.webservice = webservice
        self.webservices = dict(webservices) if webservices else {webservice: layout}
        self.routes = LAYOUTS[self.webservices.get(webservice, layout)]
        self.version = version
        self.tz = ZoneInfo(server_timezone)
        self._now = 0.0
        self.set_time(now)
        self._random = random.Random(seed)
        pw = {"agent1": "agent1-secret", "root@localhost": "root-secret", **(passwords or {})}
        self.users: dict[int, User] = {
            1: User(1, "root@localhost", pw["root@localhost"], "Admin", "OTRS", "root@localhost", {1, 2, 5}),
            2: User(2, "agent1", pw["agent1"], "Agent", "One", "agent1@example.org", {1, 2}),
        }
        self.sessions: dict[str, Session] = {}
        self.tickets: dict[int, Ticket] = {}
        self.requests: list[SeenRequest] = []
        self._next_article = 1
        self._next_counter = 1
        self._fail = 0
        self._fail_toggle = False
        if version == "7.0.19":
            self._seed_tickets()
        else:
            self._seed_fresh(seeded_at)

    # -- clock -------------------------------------------------------------------------------

    def set_time(self, when: str | datetime | float) -> None:
        """Set the server clock (a `YYYY-MM-DD HH:MM:SS[.fff]` string is read in the server zone)."""
        if isinstance(when, str):
            fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in when else "%Y-%m-%d %H:%M:%S"
            when = datetime.strptime(when, fmt).replace(tzinfo=self.tz)
        if isinstance(when, datetime):
            when = when.timestamp()
        self._now = float(when)

    def advance(self, seconds: float) -> None:
        self._now += seconds

    @property
    def now(self) -> int:
        return int(self._now)

    def fmt(self, epoch: int) -> str:
        return datetime.fromtimestamp(epoch, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def parse(self, text: str) -> int:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz).timestamp())

    # -- test helpers ------------------------------------------------------------------------

    def fail_next(self, calls: int) -> None:
        """The next `calls` requests fail: a plain-text 500 and a dropped connection, alternately."""
        self._fail += calls

    def heal(self) -> None:
        """The outage is over: failures still pending from `fail_next` are dropped."""
        self._fail = 0

    def expire_session(self, session_id: str, by: int = 100_000) -> None:
        """Back-date a session like the recorder did in the database (025)."""
        s = self.sessions[session_id]
        s.start -= by
        s.last_request -= by

    def add_customer_ticket(
        self,
        title: str,
        body: str,
        *,
        queue: str = "Raw",
        priority: str = "3 normal",
        state: str = "new",
        customer: str = "customer@example.com",
        sender: str = "Customer <customer@example.com>",
        content_type: str = "text/plain; charset=utf8",
        channel: str = "Email",
        attachments: Iterable[tuple[str, str, bytes]] = (),
    ) -> int:
        """A ticket as the PostMaster files a customer's mail (created by root, SenderType customer)."""
        ticket = self._create_ticket(
            self.users[1],
            title=title,
            queue_id=self.queue_id(queue),
            priority_id=self.priority_id(priority),
            state_id=self.state_id(state),
            customer_user=customer,
        )
        self._add_article(
            ticket,
            self.users[1],
            {
                "CommunicationChannel": channel,
                "SenderType": "customer",
                "IsVisibleForCustomer": 1,
                "From": sender,
                "Subject": title,
                "Body": body,
                "ContentType": content_type,
            },
            [{"Filename": n, "ContentType": ct, "Content": base64.b64encode(c).decode()} for n, ct, c in attachments],
            create=True,
        )
        return ticket.id

    def agent_update(
        self,
        ticket_id: int,
        *,
        queue: str | None = None,
        priority: str | None = None,
        state: str | None = None,
        note: str | None = None,
        login: str = "root@localhost",
    ) -> None:
        """What a human agent does in the web UI (not through the REST API)."""
        user = next(u for u in self.users.values() if u.login == login)
        ticket = self.tickets[ticket_id]
        if queue is not None:
            self._set_queue(ticket, user, self.queue_id(queue))
        if state is not None:
            self._set_state(ticket, user, self.state_id(state))
        if priority is not None:
            self._set_priority(ticket, user, self.priority_id(priority))
        if note is not None:
            article = {"CommunicationChannel": "Internal", "SenderType": "agent", "IsVisibleForCustomer": 0}
            self._add_article(ticket, user, {**article, "Subject": "Note", "Body": note}, [], create=False)

    def writes(self, ticket_id: int) -> int:
        """Queue moves, priority changes and articles added after creation."""
        return self.tickets[ticket_id].writes

    def ticket(self, ticket_id: int) -> Ticket:
        return self.tickets[ticket_id]

    def queue_name(self, ticket_id: int) -> str:
        return QUEUES[self.tickets[ticket_id].queue_id][0]

    def priority_name(self, ticket_id: int) -> str:
        return PRIORITIES[self.tickets[ticket_id].priority_id]

    def queue_id(self, name: str) -> int:
        return next(i for i, (n, _) in QUEUES.items() if n == name)

    def priority_id(self, name: str) -> int:
        return next(i for i, n in PRIORITIES.items() if n == name)

    def state_id(self, name: str) -> int:
        return next(i for i, (n, _) in STATES.items() if n == name)

    # -- HTTP ----------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport; dropped answers surface as the errors httpx raises for them."""

        def handler(request: httpx.Request) -> httpx.Response:
            raw = request.url.raw_path.decode("ascii")
            path, _, query = raw.partition("?")
            headers = {k: v for k, v in request.headers.multi_items()}
            result = self.handle(request.method, path, query, headers, request.content)
            if isinstance(result, Drop):
                if result.kind == "empty":
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
                raise httpx.RemoteProtocolError("illegal status line: bytearray(b'<!DOCTYPE HTML')", request=request)
            return httpx.Response(result.status, headers=result.headers, content=result.body)

        return httpx.MockTransport(handler)

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Response | Drop:
        """One request, answered as Znuny 7.0.19 behind Apache/mod_perl answers it."""
        self.requests.append(SeenRequest(method, path, query, dict(headers), body))
        if self._fail > 0:
            self._fail -= 1
            self._fail_toggle = not self._fail_toggle
            if self._fail_toggle:
                return Response(500, TEXT_TYPE, b"Internal Server Error")
            return Drop("empty")
        base = "/" + (f"{self.prefix}/" if self.prefix else "") + "nph-genericinterface.pl/Webservice/"
        if not path.startswith(base):
            return Response(404, "text/html; charset=iso-8859-1", b"<h1>Not Found</h1>")
        name, slash, rest = path[len(base) :].partition("/")
        layout = self.webservices.get(unquote(name))
        if layout is None:
            return Drop("empty")
        routes = self.routes if unquote(name) == self.webservice else LAYOUTS[layout]
        result = self._serve(routes, method, slash + rest, query, headers, body)
        if isinstance(result, Response) and KEEP_ALIVE[layout]:
            return replace(result, connection="Keep-Alive")
        return result

    def _serve(
        self,
        routes: list[tuple[str, str, str]],
        method: str,
        route: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response | Drop:
        matched = self._route(routes, method, route)
        if matched is None:
            msg = f"HTTP::REST Error while determine Operation for request URI '{route}'."
            return Response(500, TEXT_TYPE, msg.encode())
        operation, route_params = matched
        data: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in data:
                prev = data[key]
                data[key] = [*(prev if isinstance(prev, list) else [prev]), value]
            else:
                data[key] = value
        header_names = {"sessionid": "SessionID", "userlogin": "UserLogin", "password": "Password"}
        for key, value in headers.items():
            if key.lower().startswith("x-otrs-header-"):
                suffix = key[len("x-otrs-header-") :]
                data.setdefault(header_names.get(suffix.lower(), suffix), value)
        data.update(route_params)
        if method != "GET" and body:
            ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            if not ctype or ctype.lower().startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                return Response(500, TEXT_TYPE, b"Could not read input data")
            try:
                content = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return Response(500, TEXT_TYPE, b"Error while decoding request content.")
            if isinstance(content, list):
                return Drop("no_status_line", APACHE_500.encode())
            if not isinstance(content, dict):
                return Response(500, TEXT_TYPE, b"Error while decoding request content.")
            data.update(content)
        user_agent = {k.lower(): v for k, v in headers.items()}.get("user-agent", "")
        try:
            result = getattr(self, f"_op_{operation}")(data, user_agent)
        except OperationError as exc:
            return Response(200, JSON_TYPE, dumps({"Error": {"ErrorCode": exc.code, "ErrorMessage": exc.message}}))
        except Fault as exc:
            return Response(500, TEXT_TYPE, dumps({"faultcode": "Server", "faultstring": str(exc)}))
        return Response(200, JSON_TYPE, dumps(result))

    @staticmethod
    def _route(routes: list[tuple[str, str, str]], method: str, route: str) -> tuple[str, dict[str, str]] | None:
        parts = route.split("/")
        for m, pattern, operation in routes:
            want = pattern.split("/")
            if m != method or len(want) != len(parts):
                continue
            params: dict[str, str] = {}
            for w, p in zip(want, parts, strict=True):
                if w.startswith(":"):
                    if not p:
                        break
                    params[w[1:]] = unquote(p)
                elif w != p:
                    break
            else:
                return operation, params
        return None

    # -- authentication ------------------------------------------------------------------------

    def _login(self, login: Any, password: Any) -> User | None:
        for user in self.users.values():
            if user.login == login and user.password == password:
                return user
        return None

    def _session_user(self, session_id: Any, *, touch: bool = True) -> User | None:
        s = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if s is None:
            return None
        if self.now - s.last_request > SESSION_MAX_IDLE or self.now - s.start > SESSION_MAX_TIME:
            del self.sessions[s.id]
            return None
        if touch:
            s.last_request = self.now
        return self.users[s.user_id]

    def _auth(self, data: Mapping[str, Any], op: str, message: str = "Authorization failing!") -> User:
        user = None
        if data.get("SessionID"):
            user = self._session_user(data["SessionID"])
        elif data.get("UserLogin") and data.get("Password"):
            user = self._login(data["UserLogin"], data["Password"])
        if user is None:
            raise OperationError(f"{op}.AuthFail", f"{op}: {message}")
        return user

    def _auth_write(self, data: Mapping[str, Any], op: str) -> User:
        if not data.get("UserLogin") and not data.get("CustomerUserLogin") and not data.get("SessionID"):
            raise OperationError(
                f"{op}.MissingParameter", f"{op}: UserLogin, CustomerUserLogin or SessionID is required!"
            )
        if data.get("UserLogin") and not data.get("Password") and not data.get("SessionID"):
            raise OperationError(f"{op}.MissingParameter", f"{op}: Password or SessionID is required!")
        return self._auth(data, op, "User could not be authenticated!")

    # -- operations ----------------------------------------------------------------------------

    def _op_SessionCreate(self, data: dict[str, Any], user_agent: str) -> Any:
        if not data.get("Password"):
            raise OperationError("SessionCreate.MissingParameter", "SessionCreate: Password parameter is missing!")
        if not data.get("UserLogin") and not data.get("CustomerUserLogin"):
            raise OperationError(
                "SessionCreate.MissingParameter", "SessionCreate: UserLogin or CustomerUserLogin parameter is needed!"
            )
        user = self._login(data.get("UserLogin"), data["Password"])
        if user is None:
            raise OperationError("SessionCreate.AuthFail", "SessionCreate: Authorization failing!")
        alphabet = string.ascii_letters + string.digits
        sid = "".join(self._random.choice(alphabet) for _ in range(32))
        self.sessions[sid] = Session(sid, user.id, self.now, self.now, user_agent)
        return {"SessionID": sid}

    def _op_SessionGet(self, data: dict[str, Any], user_agent: str) -> Any:
        s = self.sessions.get(data["SessionID"])
        if s is None or self._session_user(s.id, touch=False) is None:
            raise OperationError("SessionGet.SessionInvalid", "SessionGet: SessionID is Invalid!")
        u = self.users[s.user_id]
        values: dict[str, str | None] = {
            "AdminCommunicationLogPageShown": "25",
            "AdminDynamicFieldsOverviewPageShown": "25",
            "ChangeTime": u.created,
            "CreateTime": u.created,
            "SessionSource": "GenericInterface",
            "UserActivityLinkTarget": "_self",
            "UserCreateNextMask": "",
            "UserEmail": u.email,
            "UserFirstname": u.first,
            "UserFullname": u.fullname,
            "UserID": str(u.id),
            "UserLastLogin": str(s.start),
            "UserLastLoginTimestamp": self.fmt(s.start),
            "UserLastRequest": str(s.last_request),
            "UserLastViewsLimit": "5",
            "UserLastViewsPosition": "Avatar",
            "UserLastname": u.last,
            "UserLogin": u.login,
            "UserLoginFailed": "0",
            "UserRefreshTime": "0",
            "UserRemoteAddr": "127.0.0.1",
            "UserRemoteUserAgent": s.user_agent,
            "UserSessionStart": str(s.start),
            "UserTicketOverviewMediumPageShown": "20",
            "UserTicketOverviewPreviewPageShown": "15",
            "UserTicketOverviewSmallPageShown": "25",
            "UserTitle": None,
            "UserType": "User",
            "ValidID": "1",
        }
        return {"SessionData": [{"Key": k, "Value": v} for k, v in sorted(values.items())]}

    def _op_TicketSearch(self, data: dict[str, Any], user_agent: str) -> Any:
        user = self._auth(data, "TicketSearch")
        hits = [t for t in self.tickets.values() if QUEUES[t.queue_id][1] in user.groups]
        try:
            hits = [t for t in hits if self._matches(t, data)]
        except ValueError:
            return {}
        sort_by = _first(data.get("SortBy")) or "Age"
        order = _first(data.get("OrderBy")) or "Down"
        keys = {
            "Age": lambda t: (t.created, t.id),
            "Created": lambda t: (t.created, t.id),
            "Changed": lambda t: (t.changed, t.id),
            "TicketNumber": lambda t: (t.number, t.id),
            "Title": lambda t: (t.title, t.id),
            "Queue": lambda t: (QUEUES[t.queue_id][0], t.id),
            "Priority": lambda t: (t.priority_id, t.id),
            "State": lambda t: (STATES[t.state_id][0], t.id),
            "TicketID": lambda t: (t.id, t.id),
        }
        hits.sort(key=keys.get(sort_by, keys["Age"]), reverse=order != "Up")
        limit = int(_first(data.get("Limit")) or SEARCH_LIMIT)
        hits = hits[:limit]
        return {"TicketID": [str(t.id) for t in hits]} if hits else {}

    def _matches(self, t: Ticket, data: Mapping[str, Any]) -> bool:
        """One ticket against the search filters; one unknown name empties the whole search (ValueError).

        As the real 7.1.7 answers: Queues ["NoSuchQueue", "Raw"] and Priorities ["9 nope", "3 normal"] are `{}`,
        and names are case-sensitive ("raw" is unknown).
        """

        def names(key: str, table: Mapping[int, str]) -> set[int] | None:
            if key not in data:
                return None
            wanted = set(_list(data[key]))
            if wanted - set(table.values()):
                raise ValueError(f"unknown {key}")
            return {i for i, n in table.items() if n in wanted}

        def ids(key: str) -> set[int] | None:
            return None if key not in data else {int(v) for v in _list(data[key]) if str(v).isdigit()}

        filters = [
            (names("Queues", {i: q[0] for i, q in QUEUES.items()}), t.queue_id),
            (ids("QueueIDs"), t.queue_id),
            (names("States", {i: s[0] for i, s in STATES.items()}), t.state_id),
            (ids("StateIDs"), t.state_id),
            (names("StateType", {i: s[1] for i, s in STATES.items()}), t.state_id),
            (names("Priorities", PRIORITIES), t.priority_id),
            (ids("PriorityIDs"), t.priority_id),
        ]
        for allowed, value in filters:
            if allowed is not None and value not in allowed:
                return False
        for key, value in (("Title", t.title), ("TicketNumber", t.number)):
            if key in data and not any(_wildcard(p, value) for p in _list(data[key])):
                return False
        if "CustomerUserLogin" in data and (t.customer_user or "").lower() not in {
            v.lower() for v in _list(data["CustomerUserLogin"])
        }:
            return False
        if "CustomerID" in data and (t.customer_id or "") not in _list(data["CustomerID"]):
            return False
        times = {"Create": [t.created], "Change": [t.changed], "Close": t.close_times}
        for kind, values in times.items():
            newer = data.get(f"Ticket{kind}TimeNewerDate")
            older = data.get(f"Ticket{kind}TimeOlderDate")
            lo = self._date(newer) if newer is not None else None
            hi = self._date(older) if older is not None else None
            if f"Ticket{kind}TimeNewerMinutes" in data:
                lo = self.now - 60 * int(_first(data[f"Ticket{kind}TimeNewerMinutes"]))
            if f"Ticket{kind}TimeOlderMinutes" in data:
                hi = self.now - 60 * int(_first(data[f"Ticket{kind}TimeOlderMinutes"]))
            if lo is None and hi is None:
                continue
            if not any((lo is None or v >= lo) and (hi is None or v <= hi) for v in values):
                return False
        return True

    def _date(self, value: Any) -> int:
        text = _first(value)
        if not isinstance(text, str) or not _DATE.match(text):
            raise ValueError(text)
        return self.parse(text)

    def _op_TicketGetList(self, data: dict[str, Any], user_agent: str) -> Any:
        return self._op_TicketGet(data, user_agent)

    def _op_TicketGet(self, data: dict[str, Any], user_agent: str) -> Any:
        user = self._auth(data, "TicketGet")
        raw_ids = [p.strip() for v in _list(data.get("TicketID")) for p in str(v).split(",") if p.strip()]
        if not raw_ids:
            raise OperationError("TicketGet.MissingParameter", "TicketGet: TicketID parameter is missing!")
        if self.version != "7.0.19":
            if not all(raw.isdigit() for raw in raw_ids):
                raise OperationError("TicketGet.WrongStructure", "TicketGet: Invalid ticket ID parameter(s) found!")
            if not any(int(raw) for raw in raw_ids):
                raise OperationError("TicketGet.MissingParameter", "TicketGet: TicketID parameter is missing!")
        tickets = []
        for raw in raw_ids:
            ticket = self.tickets.get(int(raw)) if raw.isdigit() else None
            if ticket is None or QUEUES[ticket.queue_id][1] not in user.groups:
                raise OperationError("TicketGet.AccessDenied", "TicketGet: User does not have access to the ticket!")
            tickets.append(ticket)
        return {"Ticket": [self._ticket_json(t, data) for t in tickets]}

    def invoker_request(
        self,
        ticket_id: int,
        token: str | None,
        *,
        via: Literal["basic", "header"] = "basic",
        mapped: bool = True,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the TicketCreated invoker's request, as the real Znuny 7.1.7 sends it.

        Seen from the real server (tests/e2e/test_znuny_push.py) with deploy/znuny/ticketd-webservice.yml:
        Ticket::Generic's `{"Ticket": TicketDeepGet, "Event": the event's data}` after the outbound mapping
        that keeps `Event` only, compact JSON with the TicketID a number, posted by REST::Client as
        `application/json; charset=UTF-8` with BasicAuth `znuny:<token>` (or an AdditionalHeaders entry).
        `mapped=False`: an invoker without that mapping, which sends the ticket too (here TicketGet's fields).
        """
        payload: dict[str, Any] = {"Event": {"Event": "TicketCreate", "TicketID": ticket_id}}
        if not mapped:
            payload["Ticket"] = self._ticket_json(self.tickets[ticket_id], {})
        headers = {"User-Agent": "REST::Client/273", "Content-Type": "application/json; charset=UTF-8"}
        if token is not None and via == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(f"znuny:{token}".encode()).decode()
        elif token is not None:
            headers["X-Ticketd-Token"] = token
        return headers, json.dumps(payload, separators=(",", ":")).encode()

    def _ticket_json(self, t: Ticket, opts: Mapping[str, Any]) -> dict[str, Any]:
        state, state_type = STATES[t.state_id]
        out: dict[str, Any] = {
            "Age": self.now - t.created,
            "ArchiveFlag": "n",
            "ChangeBy": t.change_by,
            "Changed": self.fmt(t.changed),
            "CreateBy": t.create_by,
            "Created": self.fmt(t.created),
            "CustomerID": t.customer_id,
            "CustomerUserID": t.customer_user,
            "EscalationResponseTime": 0,
            "EscalationSolutionTime": 0,
            "EscalationTime": 0,
            "EscalationUpdateTime": 0,
            "GroupID": QUEUES[t.queue_id][1],
            "Lock": "unlock",
            "LockID": 1,
            "Owner": self.users[t.owner_id].login,
            "OwnerID": t.owner_id,
            "Priority": PRIORITIES[t.priority_id],
            "PriorityID": t.priority_id,
            "Queue": QUEUES[t.queue_id][0],
            "QueueID": t.queue_id,
            "RealTillTimeNotUsed": 0,
            "Responsible": self.users[t.responsible_id].login,
            "ResponsibleID": t.responsible_id,
            "SLAID": "",
            "ServiceID": "",
            "State": state,
            "StateID": t.state_id,
            "StateType": state_type,
            "TicketID": t.id,
            "TicketNumber": t.number,
            "TimeUnit": 0,
            "Title": t.title,
            "Type": "Unclassified",
            "TypeID": 1,
            "UnlockTimeout": t.unlock_timeout,
            "UntilTime": 0,
        }
        if _true(opts.get("Extended")) and state_type == "closed" and t.close_times:
            out["Closed"] = self.fmt(max(t.close_times))
            out["SolutionInMin"] = 0  # business-hours minutes; the recordings were made on a Sunday
        if _true(opts.get("DynamicFields")):
            out["DynamicField"] = [{"Name": n, "Value": None} for n in DYNAMIC_FIELDS]
        if _true(opts.get("AllArticles")):
            articles = list(t.articles)
            if "ArticleSenderType" in opts:
                wanted = set(_list(opts["ArticleSenderType"]))
                articles = [a for a in articles if a.fields["SenderType"] in wanted]
            if str(_first(opts.get("ArticleOrder")) or "ASC").upper() == "DESC":
                articles.reverse()
            limit = _first(opts.get("ArticleLimit"))
            if limit and str(limit).isdigit():
                articles = articles[: int(limit)]
            out["Article"] = [self._article_json(a, opts) for a in articles]
        return out

    def _article_json(self, a: Article, opts: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a.fields)
        if self.version != "7.0.19":  # 7.1.7 names the channel next to its id
            channel_id = out["CommunicationChannelID"]
            out["CommunicationChannel"] = next(n for n, i in CHANNELS.items() if i == channel_id)
        if _true(opts.get("Attachments")):
            shown = [x for x in a.attachments if not x.html_body or _true(opts.get("HTMLBodyAsAttachment"))]
            with_content = str(_first(opts.get("GetAttachmentContents")) or "1") != "0"
            if shown:
                out["Attachment"] = [
                    {
                        "Content": base64.b64encode(x.content).decode() if with_content else "",
                        "ContentAlternative": "",
                        "ContentID": "",
                        "ContentType": x.content_type,
                        "Disposition": x.disposition,
                        "FileID": str(i),
                        "Filename": x.filename,
                        "FilesizeRaw": str(len(x.content)),
                    }
                    for i, x in enumerate(shown, 1)
                ]
        return out

    def _op_TicketHistoryGet(self, data: dict[str, Any], user_agent: str) -> Any:
        user = self._auth(data, "TicketHistoryGet")
        out = []
        for raw in [p for v in _list(data.get("TicketID")) for p in str(v).split(",") if p]:
            ticket = self.tickets.get(int(raw)) if raw.isdigit() else None
            if ticket is None or QUEUES[ticket.queue_id][1] not in user.groups:
                raise OperationError(
                    "TicketHistoryGet.AccessDenied",
                    f"TicketHistoryGet: User does not have access to the ticket {raw}!",
                )
            history = [
                {
                    "ArticleID": h.article_id,
                    "CreateBy": h.create_by,
                    "CreateTime": self.fmt(h.create_time),
                    "HistoryType": h.type,
                    "HistoryTypeID": HISTORY_TYPES[h.type],
                    "Name": h.name,
                    "OwnerID": h.owner_id,
                    "PriorityID": h.priority_id,
                    "QueueID": h.queue_id,
                    "StateID": h.state_id,
                    "TicketID": str(ticket.id),
                    "TypeID": 1,
                }
                for h in ticket.history
            ]
            out.append({"History": history, "TicketID": str(ticket.id)})
        return {"TicketHistory": out}

    def _op_TicketCreate(self, data: dict[str, Any], user_agent: str) -> Any:
        user = self._auth_write(data, "TicketCreate")
        t = data.get("Ticket")
        if not isinstance(t, dict) or not t:
            raise OperationError(
                "TicketCreate.MissingParameter", "TicketCreate: Ticket parameter is missing or not valid!"
            )
        a = data.get("Article")
        if not isinstance(a, dict) or not a:
            raise OperationError(
                "TicketCreate.MissingParameter", "TicketCreate: Article parameter is missing or not valid!"
            )
        if not t.get("Title"):
            raise OperationError("TicketCreate.MissingParameter", "TicketCreate: Ticket->Title parameter is missing!")
        queue_id = self._check_ref("TicketCreate", t, "Queue", {i: q[0] for i, q in QUEUES.items()}, required=True)
        state_id = self._check_ref("TicketCreate", t, "State", {i: s[0] for i, s in STATES.items()}, required=True)
        priority_id = self._check_ref("TicketCreate", t, "Priority", PRIORITIES, required=True)
        if not t.get("CustomerUser"):
            raise OperationError(
                "TicketCreate.MissingParameter", "TicketCreate: Ticket->CustomerUser parameter is missing!"
            )
        self._check_article("TicketCreate", a)
        assert queue_id is not None and state_id is not None and priority_id is not None
        if QUEUES[queue_id][1] not in user.groups:
            raise OperationError(
                "TicketCreate.AccessDenied", "TicketCreate: Can not create tickets in given Queue or QueueID!"
            )
        ticket = self._create_ticket(
            user,
            title=t["Title"],
            queue_id=queue_id,
            priority_id=priority_id,
            state_id=state_id,
            customer_user=t["CustomerUser"],
        )
        attachments = data.get("Attachment") or []
        article_id = self._add_article(ticket, user, a, _list(attachments), create=True)
        return {
            "ArticleID": str(article_id) if a.get("SenderType") == "customer" else article_id,
            "TicketID": str(ticket.id),
            "TicketNumber": ticket.number,
        }

    def _op_TicketUpdate(self, data: dict[str, Any], user_agent: str) -> Any:
        user = self._auth_write(data, "TicketUpdate")
        raw = str(data.get("TicketID") or "")
        if self.version != "7.0.19" and raw in ("", "0") and not data.get("TicketNumber"):
            raise OperationError("TicketUpdate.MissingParameter", "TicketUpdate: TicketID or TicketNumber is required!")
        ticket = self.tickets.get(int(raw)) if raw.isdigit() else None
        if ticket is None or QUEUES[ticket.queue_id][1] not in user.groups:
            raise OperationError("TicketUpdate.AccessDenied", "TicketUpdate: User does not have access to the ticket!")
        t = data.get("Ticket") if isinstance(data.get("Ticket"), dict) else {}
        a = data.get("Article") if isinstance(data.get("Article"), dict) else None
        assert isinstance(t, dict)
        queue_id = self._check_ref("TicketUpdate", t, "Queue", {i: q[0] for i, q in QUEUES.items()})
        state_id = self._check_ref("TicketUpdate", t, "State", {i: s[0] for i, s in STATES.items()})
        priority_id = self._check_ref("TicketUpdate", t, "Priority", PRIORITIES)
        if a is not None:
            self._check_article("TicketUpdate", a)
        if t.get("Title") and t["Title"] != ticket.title:
            ticket.title = t["Title"]
            self._touch(ticket, user)
        if queue_id is not None:
            if QUEUES[queue_id][1] not in user.groups:
                raise Fault("Ticket queue could not be updated, please contact system administrator!")
            self._set_queue(ticket, user, queue_id)
        if state_id is not None:
            self._set_state(ticket, user, state_id)
        if priority_id is not None:
            self._set_priority(ticket, user, priority_id)
        out: dict[str, Any] = {"TicketID": str(ticket.id), "TicketNumber": ticket.number}
        if a is not None:
            article_id = self._add_article(ticket, user, a, _list(data.get("Attachment") or []), create=False)
            out["ArticleID"] = str(article_id) if a.get("SenderType") == "customer" else article_id
        return out

    @staticmethod
    def _check_ref(
        op: str, t: Mapping[str, Any], name: str, table: Mapping[int, str], *, required: bool = False
    ) -> int | None:
        if t.get(f"{name}ID") not in (None, ""):
            value = t[f"{name}ID"]
            if str(value).isdigit() and int(value) in table:
                return int(value)
        elif t.get(name) not in (None, ""):
            found = [i for i, n in table.items() if n == t[name]]
            if found:
                return found[0]
        elif not required:
            return None
        else:
            raise OperationError(
                f"{op}.MissingParameter", f"{op}: Ticket->{name}ID or Ticket->{name} parameter is missing!"
            )
        raise OperationError(
            f"{op}.InvalidParameter", f"{op}: Ticket->{name}ID or Ticket->{name} parameter is invalid!"
        )

    @staticmethod
    def _check_article(op: str, a: Mapping[str, Any]) -> None:
        for needed in ("Subject", "Body"):
            if not a.get(needed):
                raise OperationError(f"{op}.MissingParameter", f"{op}: Article->{needed} parameter is missing!")
        if not a.get("ContentType") and not (a.get("MimeType") and a.get("Charset")):
            raise OperationError(
                f"{op}.MissingParameter", f"{op}: Article->ContentType or MimeType and Charset parameters are missing!"
            )
        channel = a.get("CommunicationChannel")
        if channel is not None and channel not in CHANNELS:
            raise OperationError(f"{op}.InvalidParameter", f"{op}: Article->CommunicationChannel parameter is invalid!")
        sender = a.get("SenderType")
        if sender is not None and sender not in SENDER_TYPES:
            raise OperationError(f"{op}.InvalidParameter", f"{op}: Article->SenderType parameter is invalid!")

    # -- state changes ---------------------------------------------------------------------------

    def _history(
        self, t: Ticket, user: User, type_: str, name: str, article_id: int = 0, owner: int | None = None
    ) -> None:
        t.history.append(
            HistoryEntry(
                type_,
                name,
                article_id,
                user.id,
                self.now,
                t.owner_id if owner is None else owner,
                t.priority_id,
                t.queue_id,
                t.state_id,
            )
        )

    def _touch(self, t: Ticket, user: User) -> None:
        t.changed = self.now
        t.change_by = user.id

    def _create_ticket(
        self, user: User, *, title: str, queue_id: int, priority_id: int, state_id: int, customer_user: str
    ) -> Ticket:
        number = ticket_number(self._next_counter, datetime.fromtimestamp(self.now, self.tz).strftime("%Y%m%d"))
        self._next_counter += 1
        t = Ticket(
            id=max(self.tickets, default=0) + 1,
            number=number,
            title=title,
            queue_id=queue_id,
            priority_id=priority_id,
            state_id=state_id,
            customer_user=customer_user,
            customer_id="",
            owner_id=1,
            responsible_id=1,
            create_by=user.id,
            change_by=user.id,
            created=self.now,
            changed=self.now,
        )
        self.tickets[t.id] = t
        self._history(
            t,
            user,
            "NewTicket",
            f"%%{number}%%{QUEUES[queue_id][0]}%%{PRIORITIES[priority_id]}%%{STATES[state_id][0]}%%{t.id}",
        )
        self._history(t, user, "CustomerUpdate", f"%%CustomerID=;CustomerUser={customer_user};")
        if STATES[state_id][1] == "closed":
            t.close_times.append(self.now)
        return t

    def _add_article(self, t: Ticket, user: User, a: Mapping[str, Any], attachments: list[Any], *, create: bool) -> int:
        article_id = self._next_article
        self._next_article += 1
        sender = str(a.get("SenderType") or "agent")
        channel = str(a.get("CommunicationChannel") or "Email")
        content_type = str(a.get("ContentType") or f"{a.get('MimeType')}; charset={a.get('Charset')}")
        mime, _, params = content_type.partition(";")
        charset_match = re.search(r"charset=\"?([^\";]+)", params)
        charset = charset_match.group(1) if charset_match else ""
        body = str(a["Body"])
        stored: list[Attachment] = []
        if mime.strip().lower() == "text/html":
            stored.append(Attachment(body.encode(), f'text/html; charset="{charset}"', "file-2", "inline", True))
            body = html_to_ascii(body)
            content_type, mime = f"text/plain; charset={charset}", "text/plain"
        elif body.endswith("\n"):
            body = body[:-1]
        for x in attachments:
            if isinstance(x, dict):
                stored.append(
                    Attachment(base64.b64decode(x.get("Content", "")), x.get("ContentType", ""), x.get("Filename", ""))
                )
        if create:
            default_from, default_to = t.customer_user or "", QUEUES[t.queue_id][0]
        else:
            default_from = user.fullname
            default_to = t.customer_user or "" if sender == "customer" and channel != "Internal" else ""
        fields = {
            "ArticleID": article_id,
            "ArticleNumber": len(t.articles) + 1,
            "Bcc": a.get("Bcc") or "",
            "Body": body,
            "Cc": a.get("Cc") or "",
            "ChangeBy": user.id,
            "ChangeTime": self.fmt(self.now),
            "Charset": charset,
            "CommunicationChannelID": CHANNELS[channel],
            "ContentCharset": charset,
            "ContentType": content_type,
            "CreateBy": user.id,
            "CreateTime": self.fmt(self.now),
            "From": a.get("From") or default_from,
            "InReplyTo": a.get("InReplyTo") or "",
            "IncomingTime": self.now,
            "IsVisibleForCustomer": int(a.get("IsVisibleForCustomer") or 0),
            "MessageID": a.get("MessageID") or "",
            "MimeType": mime.strip(),
            "References": a.get("References") or "",
            "ReplyTo": a.get("ReplyTo") or "",
            "SenderType": sender,
            "SenderTypeID": SENDER_TYPES[sender],
            "Subject": a["Subject"],
            "TicketID": t.id,
            "TimeUnit": 0,
            "To": a.get("To") or default_to,
        }
        t.articles.append(Article(fields, stored))
        if create:
            self._history(t, user, "NewTicket", "%%GenericInterface Create", article_id)
            self._history(t, user, "OwnerUpdate", f"%%{user.login}%%{user.id}", owner=user.id)
            t.owner_id = user.id
        else:
            self._history(t, user, "AddNote", "%%GenericInterface Note", article_id)
            t.writes += 1
        if sender == "agent":
            t.unlock_timeout = self.now
            if not create:
                self._history(t, user, "Misc", "Reset of unlock time.")
        self._touch(t, user)
        return article_id

    def _set_queue(self, t: Ticket, user: User, queue_id: int) -> None:
        if queue_id == t.queue_id:
            return
        old = t.queue_id
        t.queue_id = queue_id
        self._history(t, user, "Move", f"%%{QUEUES[queue_id][0]}%%{queue_id}%%{QUEUES[old][0]}%%{old}")
        t.writes += 1
        self._touch(t, user)

    def _set_priority(self, t: Ticket, user: User, priority_id: int) -> None:
        if priority_id == t.priority_id:
            return
        old = t.priority_id
        t.priority_id = priority_id
        self._history(
            t, user, "PriorityUpdate", f"%%{PRIORITIES[old]}%%{old}%%{PRIORITIES[priority_id]}%%{priority_id}"
        )
        t.writes += 1
        self._touch(t, user)

    def _set_state(self, t: Ticket, user: User, state_id: int) -> None:
        if state_id == t.state_id:
            return
        old = t.state_id
        t.state_id = state_id
        self._history(t, user, "StateUpdate", f"%%{STATES[old][0]}%%{STATES[state_id][0]}%%")
        self._history(t, user, "SetPendingTime", "%%00-00-00 00:00")
        if STATES[state_id][1] == "closed":
            t.close_times.append(self.now)
        self._touch(t, user)

    # -- the installation's data before the recording (README section 3) -------------------------

    def _seed_fresh(self, seeded_at: str | None) -> None:
        """A fresh installation (the 7.1.7 recordings): the installer's ticket 1 only, made at set-up time."""
        saved = self._now
        if seeded_at is not None:
            self.set_time(seeded_at)
        for user in self.users.values():
            user.created = self.fmt(self.now)
        self._seed_ticket_1()
        self._now = saved

    def _seed_ticket_1(self) -> Ticket:
        root = self.users[1]
        t1 = Ticket(1, "2021012710123456", "Znuny says hi!", 2, 3, 1, None, None, 1, 1, 1, 1, self.now, self.now)
        self.tickets[1] = t1
        t1.articles.append(
            Article(
                {
                    "ArticleID": 1,
                    "ArticleNumber": 1,
                    "Bcc": None,
                    "Body": INSTALLER_BODY,
                    "Cc": None,
                    "ChangeBy": 1,
                    "ChangeTime": self.fmt(self.now),
                    "Charset": "",
                    "CommunicationChannelID": 1,
                    "ContentCharset": "",
                    "ContentType": None,
                    "CreateBy": 1,
                    "CreateTime": self.fmt(self.now),
                    "From": "Znuny <hello@znuny.org>",
                    "InReplyTo": None,
                    "IncomingTime": 1611745200,
                    "IsVisibleForCustomer": 1,
                    "MessageID": "<007@localhost>",
                    "MimeType": "",
                    "References": None,
                    "ReplyTo": None,
                    "SenderType": "customer",
                    "SenderTypeID": "3",
                    "Subject": "Znuny says hi!",
                    "TicketID": 1,
                    "TimeUnit": 0,
                    "To": "Your Znuny service desk <znuny@localhost>",
                }
            )
        )
        self._history(t1, root, "NewTicket", "%%2021012710123456%%Raw%%3 normal%%new%%1", 1)
        self._next_article = 2
        return t1

    def _seed_tickets(self) -> None:
        saved = self._now
        agent = self.users[2]

        def at(text: str) -> None:
            self.set_time(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))

        at("2026-11-22 08:15:35")
        t1 = self._seed_ticket_1()
        at("2026-11-22 08:16:46")
        self.add_customer_ticket(
            "Printer jammed on floor 3",
            "The printer on floor 3 is jammed again.",
            queue="Misc",
            priority="2 low",
            customer="customer@example.org",
            sender="customer@example.org",
        )
        self.tickets[2].create_by = self.tickets[2].change_by = agent.id
        self.tickets[2].owner_id = agent.id
        at("2026-11-22 08:16:47")
        self.add_customer_ticket(
            "VPN drops every hour",
            "My VPN connection drops every hour on the hour.",
            queue="Raw",
            customer="customer@example.org",
            sender="customer@example.org",
        )
        self.tickets[3].create_by = self.tickets[3].change_by = agent.id
        self.tickets[3].owner_id = agent.id
        at("2026-11-22 08:16:48")
        self._set_queue(t1, agent, 3)
        self._set_priority(t1, agent, 5)
        self._set_state(t1, agent, 2)
        self._add_article(
            t1,
            agent,
            {
                "CommunicationChannel": "Internal",
                "SenderType": "system",
                "IsVisibleForCustomer": 0,
                "Subject": "auto-classified",
                "Body": "queue=Junk prio=5 (score 0.93)",
                "ContentType": "text/plain; charset=utf8",
            },
            [],
            create=False,
        )
        at("2026-11-22 08:17:21")
        self.tickets[2].changed = self.now
        for t in self.tickets.values():
            t.writes = 0
        self._now = saved


INSTALLER_BODY = (
    "We welcome you to Znuny, our ticketing solution based on the well-known OTRS ((Community Edition)) which we "
    "forked to make things different.\n\nWe are focused on delivering a stable and community influenced software. "
    "So if you have something to contribute, whether bug reports, solutions or enhancements, let us know. We will "
    "be happy about your participation.\n\nYou can get additional information here:\n\nCommunity forum: "
    "https://community.znuny.org/\n\nDocumentation: https://doc.znuny.org/\n\nGitHub: "
    "https://github.com/znuny/Znuny\n\nHave fun and enjoy it.\n\nYour Znuny Team\n"
)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _true(value: Any) -> bool:
    v = _first(value)
    return v not in (None, "", "0", 0, False)


def _wildcard(pattern: Any, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in str(pattern).split("*")) + "$"
    return re.match(regex, value, flags=re.I | re.S) is not None
