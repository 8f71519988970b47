"""A stateful in-memory Zammad (REST API v1) built from /work/shared/fixtures/zammad/README.md.

The server logic lives in `FakeZammad.handle`, which takes and returns plain data; `transport()` wraps
it as an `httpx.MockTransport` and `asgi_app()` as an ASGI app, so it can also be served on a port.
Facts reproduced (each has a test in tests/connectors/zammad/test_fake_fidelity.py, the webhook ones in
test_webhook.py):

- auth by `Authorization: Token token=…` or HTTP Basic; bad basic credentials -> 401
  "Invalid BasicAuth credentials", unknown token -> 401 "Can't find User for Token", no credentials ->
  403 "Authentication required", a token without `ticket.agent` -> 403 "Not authorized (token)!";
  `From:` acts on behalf of another user (401 "No such user '…'" when unknown).
- errors are `{"error", "error_human"}`; 404 RecordNotFound "Couldn't find Ticket with 'id'=…";
  422 "No lookup value found for 'group': \"…\""; injected 500s are the opaque "Error ID …" form.
- `GET /tickets` lists by id (per_page default 100, max 100); search per_page default 50, max 200
  (larger values are capped, not refused); `page` counts from 1.
- search `query` with Elasticsearch: query-string syntax (`state.name:new`, `group.name:"…"`,
  `created_at:>now-1h`, `close_at:>=2026-…`, free words, `*`); without: the query is a SQL LIKE over
  title, number and article subject/body/from/to, so field filters do not filter (they match text).
  `condition` (GET params or POST body) works in both modes; both default to `updated_at desc`.
- search answers `{"tickets": [ids], "tickets_count", "assets": {"Ticket": …, "Group": …, "User": …}}`,
  or with `expand=true` a plain array of tickets with names next to ids. `tickets_count` is the number
  of tickets on the page, as Zammad's controller counts them (`tickets.count` after limit/offset).
- `PUT /tickets/{id}` by names or ids, with an optional article, returns the ticket with ids;
  closing sets `close_at`.
- admin objects: `POST/GET /api/v1/webhooks` (permission `admin.webhook`) and `/api/v1/triggers`
  (`admin.trigger`) create and list webhooks and triggers as `model_create_render` does: unknown attributes
  are dropped (`param_cleanup`), the record comes back with its id and 201; a webhook needs a name and an
  http(s) endpoint with a host, a trigger a unique name, `activator` action|time (default action),
  `execution_condition_mode` selective|always (default selective) and `perform` `notification.webhook` with a
  `webhook_id`; invalid values are 422. Conditions are the flat hash (`ticket.action`, `ticket.<attr>_id` with
  `is`/`is not`); what the fake cannot evaluate is 422 "Invalid object selector conditions", so a shipped
  definition that passes here uses nothing beyond that. A custom or pre-defined payload is refused (422): only
  the default payload is modelled.

Trigger webhooks, as Zammad sends them (sources: zammad/zammad app/jobs/trigger_webhook_job.rb,
app/jobs/trigger_webhook_job/record_payload{,/base,/ticket,/ticket/article}.rb, lib/user_agent.rb,
app/models/webhook.rb, app/models/trigger.rb, spec/jobs/trigger_webhook_job_spec.rb; zammad-admin-documentation
manage/webhook.rst, manage/webhook/add.rst, manage/webhook/payload.rst, manage/trigger.rst; details and versions in
tests/connectors/zammad/fixtures/README.md):

- `webhook_request` is the one place that builds the request: POST with `Content-Type: application/json;
  charset=utf-8`, `User-Agent: Zammad User Agent`, `X-Zammad-Trigger` (the trigger's name), `X-Zammad-Delivery`
  (the ActiveJob job id, a UUID, the same on every retry), and with a signature token `X-Hub-Signature:
  sha1=<hex HMAC-SHA1 of the raw body>` (none without a token). The default payload is
  `{"ticket": {...}, "article": {...}}`: the ticket's attributes with association names, keys sorted, owner,
  customer, created_by, updated_by, organization, priority and group replaced by the associated record (users
  without password/preferences/group data; `{}` when there is none), and the triggering article with its
  created_by/updated_by records and `accounted_time`. (Zammad's `to_json` is compact; the fake keeps Python's
  separators, which a receiver cannot tell apart: it must verify the raw bytes it got.)
- A trigger fires when a ticket is created through the fake (`create_ticket`, after its first article exists)
  and its conditions match (triggers in name order); each firing enqueues one job. The background worker
  (`WebhookWorker`, a thread; `fake.webhook_worker.start()`/`stop()` or `with fake.webhook_worker.running():`)
  runs the jobs. Each execution rebuilds the request from the current ticket, trigger and webhook (a token fixed
  between retries signs the next try); a webhook that is gone or inactive sends nothing. Success is a 2xx answer
  only: any other status (3xx, redirects are not followed; 4xx; 5xx) and no answer at all (refused, reset,
  timeout: connect 4 s, read 30 s) fail the execution, which is retried: 5 executions in all, retry n starting
  n x 10 s after the failure before it (`WEBHOOK_RETRY_WAITS`, scaled by `wait_scale` in tests), then the
  job gives up. Every try is recorded in `webhook_worker.attempts` (time, status or error, the request).
  The fake sends to loopback addresses only; any other host counts as a failed try without a request.
  `add_webhook_trigger(endpoint, token, groups=…, states=…)` sets up both objects in one call.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

STATE_TYPES = {1: "new", 2: "open", 3: "pending reminder", 4: "pending action", 5: "closed", 6: "merged", 7: "removed"}
SENDERS = {1: "Agent", 2: "Customer", 3: "System"}
ARTICLE_TYPES = {1: "email", 5: "phone", 10: "note", 11: "web"}
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WEBHOOK_ATTEMPTS = 5  # TriggerWebhookJob: retry_on RequestError, attempts: 5 (executions in all)
WEBHOOK_RETRY_WAITS = (10, 20, 30, 40)  # seconds before retry n: wait: executions * 10.seconds
WEBHOOK_TIMEOUT = httpx.Timeout(30.0, connect=4.0)  # UserAgent.post: open_timeout 4, read_timeout 30
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
USER_PAYLOAD_BLACKLIST = {"last_login", "login_failed", "password", "preferences", "group_ids", "groups"}
TRIGGER_OPERATORS = {"is", "is not"}


def ts(value: datetime | None) -> str | None:
    """Zammad's timestamp form: UTC with milliseconds and a Z."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class HttpError(Exception):
    """A Zammad error response; `error_human` defaults to `error` as `humanize_error` does for these classes."""

    def __init__(self, status: int, error: str, *, human: bool = True, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status = status
        self.body: dict[str, str] = {"error": error}
        if human:
            self.body["error_human"] = error
        self.headers = headers or {}


@dataclass
class Request:
    """What the fake saw; tests assert on headers (auth, From) and on how many writes went out."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    user: str | None = None
    acting_user: str | None = None
    status: int = 0


@dataclass
class User:
    id: int
    login: str
    firstname: str
    lastname: str
    password: str | None = None
    permissions: set[str] = field(default_factory=set)

    @property
    def fullname(self) -> str:
        return f"{self.firstname} {self.lastname}".strip()

    @property
    def email(self) -> str:
        return self.login

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "login": self.login,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "email": self.email,
            "active": True,
            "organization_id": None,
            "role_ids": [1, 2] if "admin" in self.permissions else ([2] if "ticket.agent" in self.permissions else [3]),
        }


@dataclass(frozen=True)
class WebhookAttempt:
    """One try of a trigger's webhook job: what went out and what came back (times are `time.monotonic()`)."""

    ticket_id: int
    delivery: str
    attempt: int  # 1 is the first try, WEBHOOK_ATTEMPTS the last
    fired_at: float  # when the trigger fired (the ticket was created)
    sent_at: float
    status: int | None  # the HTTP status; None when no answer came (refused, reset, timeout, not loopback)
    error: str | None
    endpoint: str
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Job:
    """A TriggerWebhookJob in the queue: it holds references (trigger, ticket, article), not the request."""

    trigger_id: int
    ticket_id: int
    article_id: int | None
    delivery: str
    fired_at: float
    executions: int = 0


class WebhookWorker:
    """Zammad's background worker for TriggerWebhookJob: one thread that runs queued jobs when they are due.

    Jobs queue up whether or not the worker runs (as they wait in Zammad's job table); `start` runs them,
    `stop` ends the thread (a request in flight finishes first, bounded by the timeouts) and drops what is
    left. `wait_scale` shrinks the retry waits for tests; `pickup_delay` adds the time a job waits for a
    worker before its first try (not modelled unless set).
    """

    def __init__(self, fake: FakeZammad) -> None:
        self._fake = fake
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = 0
        self.wait_scale = 1.0
        self.pickup_delay = 0.0
        self.timeout: httpx.Timeout = WEBHOOK_TIMEOUT
        self.attempts: list[WebhookAttempt] = []
        self.given_up: list[str] = []  # delivery ids whose last try failed
        self.dropped: list[str] = []  # delivery ids not sent: trigger or webhook gone, webhook inactive

    # ---- control ------------------------------------------------------------------------------------------

    def start(
        self, *, wait_scale: float = 1.0, pickup_delay: float = 0.0, timeout: httpx.Timeout | None = None
    ) -> WebhookWorker:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the webhook worker is already running")
            self.wait_scale, self.pickup_delay = wait_scale, pickup_delay
            self.timeout = timeout or WEBHOOK_TIMEOUT
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fake-zammad-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 70.0) -> None:
        """End the thread; raises if it does not end within `timeout` (no thread is left behind silently)."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._queue.clear()
            self._cond.notify_all()
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the fake's webhook worker did not stop")
        with self._cond:
            self._thread = None
            self._queue.clear()  # a retry the last try scheduled

    @contextmanager
    def running(self, **options: Any) -> Iterator[WebhookWorker]:
        self.start(**options)
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> WebhookWorker:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- state for tests ----------------------------------------------------------------------------------

    def pending(self) -> int:
        """Jobs queued (due or waiting for a retry) or in flight."""
        with self._cond:
            return len(self._queue) + self._busy

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no job is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def attempts_for(self, ticket_id: int) -> list[WebhookAttempt]:
        with self._cond:
            return [a for a in self.attempts if a.ticket_id == ticket_id]

    # ---- the worker ---------------------------------------------------------------------------------------

    def enqueue(self, job: _Job, *, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._cond.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._queue)
                self._busy += 1
            try:
                self._execute(job)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _execute(self, job: _Job) -> None:
        """One `perform`: look the objects up now, send, and on failure schedule the retry or give up."""
        job.executions += 1
        built = self._fake._webhook_job_request(job)
        if built is None:
            with self._cond:
                self.dropped.append(job.delivery)
            return
        endpoint, verify, headers, body = built
        sent_at = time.monotonic()
        status: int | None = None
        error: str | None = None
        if (urlsplit(endpoint).hostname or "") not in LOOPBACK:
            error = "not sent: the fake only talks to loopback addresses"
        else:
            try:
                with httpx.Client(timeout=self.timeout, verify=verify, trust_env=False) as client:
                    status = client.post(endpoint, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        attempt = WebhookAttempt(
            job.ticket_id, job.delivery, job.executions, job.fired_at, sent_at, status, error, endpoint, headers, body
        )
        with self._cond:  # record and schedule in one step: a test that sees the try also sees its retry
            self.attempts.append(attempt)
            if attempt.ok:
                return
            if job.executions >= WEBHOOK_ATTEMPTS:
                self.given_up.append(job.delivery)
                return
            wait = WEBHOOK_RETRY_WAITS[job.executions - 1] * self.wait_scale
            heapq.heappush(self._queue, (time.monotonic() + wait, next(self._seq), job))
            self._cond.notify_all()


class FakeZammad:
    """One Zammad instance in memory; `es` switches Elasticsearch on (query-string search) or off (SQL LIKE)."""

    def __init__(self, *, es: bool = False, token: str = "zammad-test-token") -> None:
        self.es = es
        self.now = START
        self.groups: dict[int, dict[str, Any]] = {}
        for name in ("Users", "Sales", "Service Desk", "Billing"):
            self.add_group(name)
        self.priorities: dict[int, dict[str, Any]] = {
            1: self._lookup_row(1, "1 low", default_create=False),
            2: self._lookup_row(2, "2 normal", default_create=True),
            3: self._lookup_row(3, "3 high", default_create=False),
        }
        self.states: dict[int, dict[str, Any]] = {}
        for sid, (name, type_id) in enumerate(
            [
                ("new", 1),
                ("open", 2),
                ("pending reminder", 3),
                ("closed", 5),
                ("merged", 6),
                ("removed", 7),
                ("pending close", 4),
            ],
            start=1,
        ):
            self.states[sid] = {**self._lookup_row(sid, name), "state_type_id": type_id, "active": name != "removed"}
        self.users: dict[int, User] = {}
        self.admin = self.add_user(
            "admin@example.com",
            "Ada",
            "Admin",
            password="admin-pw",
            permissions={"admin", "admin.user", "ticket.agent"},
        )
        self.agent = self.add_user(
            "agent@example.com", "Otto", "Agent", password="agent-pw", permissions={"ticket.agent"}
        )
        self.customer = self.add_user("nicole.braun@zammad.org", "Nicole", "Braun", permissions={"ticket.customer"})
        self.tokens: dict[str, tuple[int, set[str]]] = {token: (self.admin.id, {"ticket.agent", "admin.user"})}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.articles: dict[int, dict[str, Any]] = {}
        self.writes: defaultdict[int, int] = defaultdict(int)
        self.requests: list[Request] = []
        self._failures: list[str] = []
        self._throttle: list[float | str] = []
        self._next_ticket = 1
        self._next_article = 1
        self._next_number = 31001
        # The server thread, the test and the webhook worker all touch this state: one lock around each change.
        self.lock = threading.RLock()
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.triggers: dict[int, dict[str, Any]] = {}
        self.webhook_worker = WebhookWorker(self)

    # ---- state set up by tests ("a human in the browser") -------------------------------------------------

    def _lookup_row(self, rid: int, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "name": name,
            "active": True,
            "note": None,
            "updated_by_id": 1,
            "created_by_id": 1,
            "created_at": ts(START - timedelta(days=30)),
            "updated_at": ts(START - timedelta(days=30)),
            **extra,
        }

    def tick(self, seconds: float = 1.0) -> datetime:
        """Advance the server clock; every event takes one tick unless a test pins the time."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def add_group(self, name: str, *, active: bool = True) -> int:
        gid = len(self.groups) + 1
        self.groups[gid] = {
            **self._lookup_row(gid, name),
            "active": active,
            "email_address_id": None,
            "follow_up_possible": "yes",
            "user_ids": [],
        }
        return gid

    def add_user(
        self,
        login: str,
        firstname: str,
        lastname: str,
        *,
        password: str | None = None,
        permissions: set[str] | None = None,
    ) -> User:
        user = User(len(self.users) + 1, login, firstname, lastname, password, permissions or set())
        self.users[user.id] = user
        return user

    def add_token(self, token: str, *, user: User | None = None, permissions: set[str] | None = None) -> None:
        self.tokens[token] = ((user or self.admin).id, permissions if permissions is not None else {"ticket.agent"})

    def create_ticket(
        self,
        title: str,
        body: str,
        *,
        group: str = "Users",
        content_type: str = "text/plain",
        created_at: datetime | None = None,
        priority: str = "2 normal",
        state: str = "new",
        article_type: str = "email",
        sender: str = "Customer",
    ) -> int:
        """A customer writes in (email by default); returns the new ticket's id. Matching triggers fire."""
        with self.lock:
            tid, aid = self._create_ticket(
                title, body, group, content_type, created_at, priority, state, article_type, sender
            )
            self._fire_triggers("create", tid, aid)
        return tid

    def _create_ticket(
        self,
        title: str,
        body: str,
        group: str,
        content_type: str,
        created_at: datetime | None,
        priority: str,
        state: str,
        article_type: str,
        sender: str,
    ) -> tuple[int, int]:
        at = created_at or self.tick()
        tid = self._next_ticket
        self._next_ticket += 1
        number = str(self._next_number)
        self._next_number += 1
        self.tickets[tid] = {
            "id": tid,
            "group_id": self._id_by_name(self.groups, group, "group"),
            "priority_id": self._id_by_name(self.priorities, priority, "priority"),
            "state_id": self._id_by_name(self.states, state, "state"),
            "organization_id": None,
            "number": number,
            "title": title,
            "owner_id": 1,
            "customer_id": self.customer.id,
            "note": None,
            "first_response_at": None,
            "close_at": None,
            "last_contact_at": ts(at),
            "last_contact_agent_at": None,
            "last_contact_customer_at": ts(at),
            "create_article_type_id": _type_id(article_type),
            "create_article_sender_id": _sender_id(sender),
            "article_count": 0,
            "escalation_at": None,
            "pending_time": None,
            "type": None,
            "time_unit": None,
            "preferences": {},
            "updated_by_id": self.customer.id,
            "created_by_id": self.customer.id,
            "created_at": ts(at),
            "updated_at": ts(at),
        }
        aid = self.add_article(
            tid,
            body,
            subject=title,
            content_type=content_type,
            type=article_type,
            sender=sender,
            at=at,
            by=self.customer,
            count_write=False,
        )
        return tid, aid

    def add_article(
        self,
        ticket_id: int,
        body: str,
        *,
        subject: str = "",
        content_type: str = "text/plain",
        type: str = "note",
        sender: str = "Agent",
        internal: bool = False,
        at: datetime | None = None,
        by: User | None = None,
        count_write: bool = True,
    ) -> int:
        with self.lock:
            return self._add_article(
                ticket_id, body, subject, content_type, type, sender, internal, at, by, count_write
            )

    def _add_article(
        self,
        ticket_id: int,
        body: str,
        subject: str,
        content_type: str,
        type: str,
        sender: str,
        internal: bool,
        at: datetime | None,
        by: User | None,
        count_write: bool,
    ) -> int:
        ticket = self._ticket(ticket_id)
        at = at or self.tick()
        by = by or self.agent
        aid = self._next_article
        self._next_article += 1
        customer = sender == "Customer"
        self.articles[aid] = {
            "id": aid,
            "ticket_id": ticket_id,
            "type_id": _type_id(type),
            "sender_id": _sender_id(sender),
            "from": f"{by.fullname} <{by.email}>" if customer else by.fullname,
            "to": "Users <support@example.com>" if customer else "",
            "cc": None,
            "subject": subject or None,
            "reply_to": None,
            "message_id": f"<{aid}@fake.zammad>" if type == "email" else None,
            "in_reply_to": None,
            "content_type": content_type,
            "references": None,
            "body": body,
            "internal": internal,
            "preferences": {},
            "updated_by_id": by.id,
            "created_by_id": by.id,
            "origin_by_id": None,
            "created_at": ts(at),
            "updated_at": ts(at),
        }
        ticket["article_count"] += 1
        ticket["updated_at"] = ts(at)
        if count_write:
            self.writes[ticket_id] += 1
        return aid

    def human_move(self, ticket_id: int, group: str) -> None:
        """An agent drags the ticket to another group in the browser."""
        self._change(ticket_id, {"group_id": self._id_by_name(self.groups, group, "group")}, self.agent)

    def close(
        self, ticket_id: int, *, group: str | None = None, priority: str | None = None, state: str = "closed"
    ) -> None:
        """An agent files the ticket and closes it; Zammad stamps `close_at`."""
        changes: dict[str, Any] = {"state_id": self._id_by_name(self.states, state, "state")}
        if group is not None:
            changes["group_id"] = self._id_by_name(self.groups, group, "group")
        if priority is not None:
            changes["priority_id"] = self._id_by_name(self.priorities, priority, "priority")
        self._change(ticket_id, changes, self.agent)

    def group_of(self, ticket_id: int) -> str:
        return str(self.groups[self._ticket(ticket_id)["group_id"]]["name"])

    def priority_of(self, ticket_id: int) -> str:
        return str(self.priorities[self._ticket(ticket_id)["priority_id"]]["name"])

    def state_of(self, ticket_id: int) -> str:
        return str(self.states[self._ticket(ticket_id)["state_id"]]["name"])

    def puts(self, ticket_id: int) -> int:
        """How many update requests reached this ticket (successful or not)."""
        return sum(1 for r in self.requests if r.method == "PUT" and r.path == f"/api/v1/tickets/{ticket_id}")

    def fail_next(self, calls: int = 1, *, kind: str = "500") -> None:
        """The next `calls` requests fail: `"500"` (opaque server error) or `"drop"` (connection reset)."""
        self._failures.extend([kind] * calls)

    def throttle_next(self, calls: int = 1, *, retry_after: float | str = 30) -> None:
        """The next `calls` requests get 429 with this Retry-After (seconds or an HTTP date)."""
        self._throttle.extend([retry_after] * calls)

    # ---- webhooks and triggers (Manage > Webhook, Manage > Trigger; POST /api/v1/webhooks, /triggers) ------

    def add_webhook(self, params: dict[str, Any], *, by: User | None = None) -> int:
        """Create a webhook as `Webhook.create` would from API params; raises HttpError(422) when invalid."""
        fields: dict[str, Any] = {
            "name": None,
            "endpoint": None,
            "signature_token": None,
            "ssl_verify": True,
            "basic_auth_username": None,
            "basic_auth_password": None,
            "customized_payload": False,
            "custom_payload": None,
            "pre_defined_webhook_type": None,
            "note": None,
            "active": True,
            "preferences": {},
        }
        with self.lock:
            record = self._record(fields, params, by)
            if not str(record["name"] or "").strip():
                raise HttpError(422, "Validation failed: Name can't be blank")
            endpoint = urlsplit(str(record["endpoint"] or ""))
            if endpoint.scheme not in ("http", "https"):
                raise HttpError(
                    422, "Validation failed: The provided endpoint is invalid, no http or https protocol was specified."
                )
            if not endpoint.hostname:
                raise HttpError(422, "Validation failed: The provided endpoint is invalid, no hostname was specified.")
            if len(str(record["note"] or "")) > 500:
                raise HttpError(422, "Validation failed: Note is too long (maximum is 500 characters)")
            if record["customized_payload"] or record["pre_defined_webhook_type"]:
                raise HttpError(422, "the fake models the default payload only (customized_payload: false)")
            record["custom_payload"] = None  # reset_custom_payload: kept only while customized
            record["id"] = len(self.webhooks) + 1
            self.webhooks[record["id"]] = record
            return int(record["id"])

    def add_trigger(self, params: dict[str, Any], *, by: User | None = None) -> int:
        """Create a trigger as `Trigger.create` would from API params; raises HttpError(422) when invalid."""
        fields: dict[str, Any] = {
            "name": None,
            "condition": {},
            "perform": {},
            "activator": "action",
            "execution_condition_mode": "selective",
            "disable_notification": True,
            "localization": None,
            "timezone": None,
            "note": None,
            "active": True,
        }
        with self.lock:
            record = self._record(fields, params, by)
            name = str(record["name"] or "").strip()
            if not name:
                raise HttpError(422, "Validation failed: Name can't be blank")
            if any(str(t["name"]).lower() == name.lower() for t in self.triggers.values()):
                raise HttpError(422, "Validation failed: Name has already been taken")
            if record["activator"] not in ("action", "time"):
                raise HttpError(422, "Validation failed: Activator is not included in the list")
            if record["execution_condition_mode"] not in ("selective", "always"):
                raise HttpError(422, "Validation failed: Execution condition mode is not included in the list")
            if len(str(record["note"] or "")) > 250:
                raise HttpError(422, "Validation failed: Note is too long (maximum is 250 characters)")
            perform = record["perform"]
            hook = perform.get("notification.webhook") if isinstance(perform, dict) else None
            if isinstance(hook, dict) and not str(hook.get("webhook_id") or "").strip():
                raise HttpError(422, "Validation failed: notification.webhook.webhook_id is missing")
            self._check_condition(record["condition"])
            record["id"] = len(self.triggers) + 1
            self.triggers[record["id"]] = record
            return int(record["id"])

    def add_webhook_trigger(
        self,
        endpoint: str,
        signature_token: str | None,
        *,
        name: str = "ticketd",
        groups: list[str] | None = None,
        states: list[str] | None = None,
        active: bool = True,
    ) -> tuple[int, int]:
        """A webhook and a trigger that fires it on ticket create (in `groups`, in `states`, if given)."""
        webhook_id = self.add_webhook(
            {"name": name, "endpoint": endpoint, "signature_token": signature_token, "active": active}
        )
        condition: dict[str, Any] = {"ticket.action": {"operator": "is", "value": "create"}}
        for attribute, names, table in (("group", groups, self.groups), ("state", states, self.states)):
            if names is not None:
                ids = [str(self._id_by_name(table, n, attribute)) for n in names]
                condition[f"ticket.{attribute}_id"] = {"operator": "is", "value": ids}
        trigger = {
            "name": name,
            "condition": condition,
            "perform": {"notification.webhook": {"webhook_id": str(webhook_id)}},
            "active": active,
        }
        return webhook_id, self.add_trigger(trigger)

    def _record(self, fields: dict[str, Any], params: dict[str, Any], by: User | None) -> dict[str, Any]:
        """`param_cleanup`: only the model's attributes, the rest dropped; then the defaults and the stamps."""
        record = {k: params.get(k, default) for k, default in fields.items()}
        now = ts(self.tick())
        uid = (by or self.admin).id
        return {**record, "updated_by_id": uid, "created_by_id": uid, "created_at": now, "updated_at": now}

    def _check_condition(self, condition: Any) -> None:
        """What the fake's trigger evaluation understands; anything else is refused, never silently ignored."""
        invalid = HttpError(422, "Invalid object selector conditions")
        if not isinstance(condition, dict):
            raise invalid
        for attribute, spec in condition.items():
            if not isinstance(spec, dict) or spec.get("operator") not in TRIGGER_OPERATORS:
                raise invalid
            if attribute == "ticket.action":
                wanted: Any = spec.get("value")
                if not {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])} <= {"create", "update"}:
                    raise invalid
            elif not re.fullmatch(r"ticket\.(group|state|priority)_id", attribute):
                raise invalid

    def _trigger_matches(self, trigger: dict[str, Any], action: str, ticket: dict[str, Any]) -> bool:
        """On create every condition is checked (selective and always agree there)."""
        if not trigger["active"] or trigger["activator"] != "action":
            return False
        for attribute, spec in trigger["condition"].items():
            wanted: Any = spec.get("value")
            values = {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
            actual = action if attribute == "ticket.action" else str(ticket.get(attribute.removeprefix("ticket.")))
            if (actual in values) != (spec["operator"] == "is"):
                return False
        return True

    def _fire_triggers(self, action: str, ticket_id: int, article_id: int | None) -> None:
        """Transaction::Trigger: each matching trigger with a webhook enqueues a TriggerWebhookJob."""
        ticket = self.tickets[ticket_id]
        fired_at = time.monotonic()
        for trigger in sorted(self.triggers.values(), key=lambda t: str(t["name"])):
            hook = trigger["perform"].get("notification.webhook") if isinstance(trigger["perform"], dict) else None
            if not isinstance(hook, dict) or not self._trigger_matches(trigger, action, ticket):
                continue
            job = _Job(int(trigger["id"]), ticket_id, article_id, str(uuid.uuid4()), fired_at)
            self.webhook_worker.enqueue(job, delay=self.webhook_worker.pickup_delay)

    def _webhook_job_request(self, job: _Job) -> tuple[str, bool, dict[str, str], bytes] | None:
        """TriggerWebhookJob#perform's lookups: endpoint, ssl_verify and the request, or None to abort."""
        with self.lock:
            trigger = self.triggers.get(job.trigger_id)
            if trigger is None or job.ticket_id not in self.tickets:
                return None  # discard_on DeserializationError: a record is gone
            hook = trigger["perform"].get("notification.webhook") or {}
            webhook = self.webhooks.get(int(str(hook.get("webhook_id") or 0)))
            if webhook is None or not webhook["active"]:
                return None  # "Can't find Webhook for ID …": logged, nothing sent, no retry
            headers, body = self.webhook_request(
                job.ticket_id,
                webhook["signature_token"],
                trigger=str(trigger["name"]),
                delivery=job.delivery,
                article_id=job.article_id,
            )
            return str(webhook["endpoint"]), bool(webhook["ssl_verify"]), headers, body

    # ---- transports ---------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._httpx_handler)

    def _httpx_handler(self, request: httpx.Request) -> httpx.Response:
        status, headers, payload = self.handle(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        return httpx.Response(status, headers=headers, content=payload, request=request)

    def asgi_app(self) -> Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]:
        """The same server as an ASGI app (e.g. for uvicorn), for clients that need a real port."""

        async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                status, out_headers, payload = self.handle(
                    scope["method"], scope["path"], scope.get("query_string", b"").decode("ascii"), headers, body
                )
            except httpx.TransportError:
                return  # a dropped connection: answer nothing
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()],
                }
            )
            await send({"type": "http.response.body", "body": payload})

        return app

    # ---- the server ---------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange; raises httpx.ConnectError for an injected dropped connection."""
        with self.lock:
            return self._handle(method, path, query_string, headers, body)

    def _handle(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        query = parse_qs(query_string, keep_blank_values=True)
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        record = Request(method, path, query, headers, parsed)
        self.requests.append(record)
        out_headers = {"content-type": "application/json; charset=utf-8"}
        try:
            if self._failures:
                kind = self._failures.pop(0)
                if kind == "drop":
                    record.status = -1
                    raise httpx.ConnectError("connection reset by fake Zammad")
                raise HttpError(
                    500, f"Error ID {secrets.token_urlsafe(6)[:6]}: Please contact your administrator.", human=False
                )
            if self._throttle:
                retry_after = self._throttle.pop(0)
                raise HttpError(429, "Too Many Requests", headers={"retry-after": str(retry_after)})
            user = self._authenticate(headers, record)
            status, result = self._route(method, path, query, parsed, user, record)
            record.status = status
            return status, out_headers, json.dumps(result).encode()
        except HttpError as err:
            record.status = err.status
            extra = dict(err.headers)
            if err.status in (401, 403):
                extra["x-failure"] = err.body.get("error_human", err.body["error"])
            return err.status, {**out_headers, **extra}, json.dumps(err.body).encode()

    def _authenticate(self, headers: dict[str, str], record: Request) -> tuple[User, set[str] | None]:
        """The acting user and, for token auth, the token's permissions (None: the user's own)."""
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        token_perms: set[str] | None = None
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                raise HttpError(401, "Invalid BasicAuth credentials") from None
            user = next((u for u in self.users.values() if u.login == login.lower()), None)
            if user is None or user.password is None or not secrets.compare_digest(user.password, password):
                raise HttpError(401, "Invalid BasicAuth credentials")
        elif scheme.lower() == "token":
            token = value.partition("token=")[2].strip().strip('"')
            if token not in self.tokens:
                raise HttpError(401, "Can't find User for Token")
            uid, token_perms = self.tokens[token]
            user = self.users[uid]
        elif scheme.lower() == "bearer":
            raise HttpError(401, "Invalid token!")
        else:
            raise HttpError(403, "Authentication required")
        record.user = user.login
        if (who := headers.get("from")) is not None:
            if "admin.user" not in (token_perms if token_perms is not None else user.permissions):
                raise HttpError(403, "Not authorized (user)!")
            target = next((u for u in self.users.values() if who.lower() in (u.login, str(u.id))), None)
            if target is None:
                raise HttpError(401, f"No such user '{who}'")
            user = target
        record.acting_user = user.login
        return user, token_perms

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        auth: tuple[User, set[str] | None],
        record: Request,
    ) -> tuple[int, Any]:
        user, token_perms = auth
        params = _rails_params(query)
        if isinstance(body, dict):
            params.update(body)  # Rails merges the JSON body into params
        expand = str(params.get("expand", "")).lower() == "true"

        def need(permission: str) -> None:
            if token_perms is not None and permission not in token_perms:
                raise HttpError(403, "Not authorized (token)!")
            if permission not in user.permissions and "admin" not in user.permissions:
                raise HttpError(403, "Not authorized")

        if method == "GET" and path == "/api/v1/users/me":
            return 200, user.json()
        if method == "GET" and path == "/api/v1/groups":
            need("ticket.agent")
            return 200, list(self.groups.values())
        if method == "GET" and path == "/api/v1/ticket_priorities":
            return 200, list(self.priorities.values())
        if method == "GET" and path == "/api/v1/ticket_states":
            rows = list(self.states.values())
            if expand:
                rows = [{**r, "state_type": STATE_TYPES[r["state_type_id"]], "next_state": None} for r in rows]
            return 200, rows
        if path == "/api/v1/tickets/search" and method in ("GET", "POST"):
            need("ticket.agent")
            return 200, self._search(params, expand)
        if method == "GET" and path == "/api/v1/tickets":
            need("ticket.agent")
            limit, offset = _paginate(params, default=100, maximum=100)
            rows = sorted(self.tickets.values(), key=lambda t: t["id"])[offset : offset + limit]
            return 200, [self._expanded(t) if expand else dict(t) for t in rows]
        if m := re.fullmatch(r"/api/v1/tickets/([^/]+)", path):
            need("ticket.agent")
            ticket = self._ticket(m.group(1))
            if method == "GET":
                return 200, self._expanded(ticket) if expand else dict(ticket)
            if method == "PUT":
                self._update(ticket, body if isinstance(body, dict) else {}, user)
                return 200, self._expanded(ticket) if expand else dict(ticket)
        if path in ("/api/v1/webhooks", "/api/v1/triggers") and method in ("GET", "POST"):
            kind = path.rsplit("/", 1)[1]
            need(f"admin.{kind[:-1]}")
            table = self.webhooks if kind == "webhooks" else self.triggers
            if method == "GET":
                return 200, list(table.values())
            add = self.add_webhook if kind == "webhooks" else self.add_trigger
            return 201, table[add(body if isinstance(body, dict) else {}, by=user)]
        if method == "GET" and (m := re.fullmatch(r"/api/v1/ticket_articles/by_ticket/([^/]+)", path)):
            need("ticket.agent")
            ticket = self._ticket(m.group(1))
            return 200, [self._article(a) for a in self.articles.values() if a["ticket_id"] == ticket["id"]]
        raise HttpError(404, f"No route matches [{method}] {path}")

    # ---- tickets ------------------------------------------------------------------------------------------

    def _ticket(self, ref: int | str) -> dict[str, Any]:
        try:
            return self.tickets[int(ref)]
        except (KeyError, ValueError):
            raise HttpError(404, f"Couldn't find Ticket with 'id'={ref}") from None

    @staticmethod
    def _id_by_name(table: dict[int, dict[str, Any]], name: str, attribute: str) -> int:
        for rid, row in table.items():
            if row["name"] == name:
                return rid
        raise HttpError(422, f"No lookup value found for '{attribute}': {json.dumps(name)}")

    def _expanded(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """`attributes_with_association_names`: ids plus names, and the article ids."""

        def login(uid: int | None) -> str | None:
            return self.users[uid].login if uid in self.users else ("-" if uid == 1 else None)

        return {
            **ticket,
            "group": self.groups[ticket["group_id"]]["name"],
            "priority": self.priorities[ticket["priority_id"]]["name"],
            "state": self.states[ticket["state_id"]]["name"],
            "owner": login(ticket["owner_id"]),
            "customer": login(ticket["customer_id"]),
            "organization": None,
            "created_by": login(ticket["created_by_id"]),
            "updated_by": login(ticket["updated_by_id"]),
            "create_article_type": ARTICLE_TYPES.get(ticket["create_article_type_id"]),
            "create_article_sender": SENDERS.get(ticket["create_article_sender_id"]),
            "article_ids": sorted(
                (a["id"] for a in self.articles.values() if a["ticket_id"] == ticket["id"]), reverse=True
            ),
            "ticket_time_accounting_ids": [],
        }

    def webhook_request(
        self,
        ticket_id: int,
        signature_token: str | None,
        *,
        trigger: str = "ticketd",
        delivery: str | None = None,
        article_id: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of the webhook a trigger sends for `ticket_id` (see the module docstring).

        `article_id` is the article the trigger fired on (default: the ticket's latest); the ticket and the
        article are read as they are now, as each execution of the job reads them.
        """
        with self.lock:
            ticket = self._expanded(self.tickets[ticket_id])
            for association, table in (("priority", self.priorities), ("group", self.groups)):
                ticket[association] = dict(sorted(table[ticket[f"{association}_id"]].items()))
            for association in ("owner", "customer", "created_by", "updated_by"):
                ticket[association] = self._user_payload(ticket[f"{association}_id"])
            ticket["organization"] = {}  # no organization_id in the fake
            articles = sorted(
                (a for a in list(self.articles.values()) if a["ticket_id"] == ticket_id), key=lambda a: a["id"]
            )
            chosen = next((a for a in articles if a["id"] == article_id), articles[-1] if articles else None)
            article: dict[str, Any] = {}
            if chosen is not None:
                article = self._article(chosen)
                article["created_by"] = self._user_payload(chosen["created_by_id"])
                article["updated_by"] = self._user_payload(chosen["updated_by_id"])
                article["accounted_time"] = 0
                article = dict(sorted(article.items()))
            payload = {"ticket": dict(sorted(ticket.items())), "article": article}
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zammad User Agent",
            "X-Zammad-Trigger": trigger,
            "X-Zammad-Delivery": delivery or str(uuid.uuid4()),
        }
        if signature_token:
            digest = hmac.new(signature_token.encode(), body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature"] = f"sha1={digest}"
        return headers, body

    def _user_payload(self, uid: int | None) -> dict[str, Any]:
        """An associated user in the webhook payload: its attributes without the blacklisted ones."""
        if uid is None or uid not in self.users:
            return {}
        row = {**self.users[uid].json(), "created_at": ts(START - timedelta(days=30)), "out_of_office": False}
        return dict(sorted((k, v) for k, v in row.items() if k not in USER_PAYLOAD_BLACKLIST))

    def _article(self, article: dict[str, Any]) -> dict[str, Any]:
        return {
            **article,
            "type": ARTICLE_TYPES[article["type_id"]],
            "sender": SENDERS[article["sender_id"]],
            "created_by": self.users[article["created_by_id"]].login,
            "updated_by": self.users[article["updated_by_id"]].login,
            "attachments": [],
        }

    def _update(self, ticket: dict[str, Any], body: dict[str, Any], user: User) -> None:
        changes: dict[str, Any] = {}
        for attribute, table in (("group", self.groups), ("priority", self.priorities), ("state", self.states)):
            if body.get(f"{attribute}_id") is not None:
                if int(body[f"{attribute}_id"]) not in table:
                    raise HttpError(422, f"No lookup value found for '{attribute}_id': {body[f'{attribute}_id']}")
                changes[f"{attribute}_id"] = int(body[f"{attribute}_id"])
            elif body.get(attribute) is not None:
                changes[f"{attribute}_id"] = self._id_by_name(table, str(body[attribute]), attribute)
        if "title" in body:
            changes["title"] = str(body["title"])
        article = body.get("article")
        if isinstance(article, dict) and not str(article.get("body") or "").strip():
            raise HttpError(422, "Need at least an 'body' for the article.")
        at = self._change(ticket["id"], changes, user)
        if isinstance(article, dict):
            self.add_article(
                ticket["id"],
                str(article["body"]),
                subject=str(article.get("subject") or ""),
                content_type=str(article.get("content_type") or "text/plain"),
                type=str(article.get("type") or "note"),
                sender=str(article.get("sender") or "Agent"),
                internal=bool(article.get("internal", False)),
                at=at,
                by=user,
            )

    def _change(self, ticket_id: int, changes: dict[str, Any], user: User) -> datetime:
        """Apply attribute changes as Rails would: only real changes write; a close stamps `close_at`."""
        with self.lock:
            return self._apply_change(ticket_id, changes, user)

    def _apply_change(self, ticket_id: int, changes: dict[str, Any], user: User) -> datetime:
        ticket = self._ticket(ticket_id)
        real = {k: v for k, v in changes.items() if ticket.get(k) != v}
        at = self.tick()
        if not real:
            return at
        ticket.update(real)
        ticket["updated_at"] = ts(at)
        ticket["updated_by_id"] = user.id
        if "state_id" in real and STATE_TYPES[self.states[real["state_id"]]["state_type_id"]] == "closed":
            ticket["close_at"] = ts(at)
        self.writes[ticket_id] += len(real)
        return at

    # ---- search -------------------------------------------------------------------------------------------

    def _search(self, params: dict[str, Any], expand: bool) -> Any:
        limit, offset = _paginate(params, default=50, maximum=200)
        query = params.get("query")
        condition = params.get("condition")
        rows = list(self.tickets.values())
        if isinstance(condition, dict) and condition:
            rows = [t for t in rows if self._matches_condition(t, condition)]
            if query:
                rows = [t for t in rows if self._like(t, str(query))]
        elif query is not None:
            rows = [t for t in rows if (self._es_match(t, str(query)) if self.es else self._like(t, str(query)))]
        rows = _order(rows, params.get("sort_by"), params.get("order_by"))[offset : offset + limit]
        if expand:
            return [self._expanded(t) for t in rows]
        assets: dict[str, dict[str, Any]] = {"Ticket": {}, "Group": {}, "User": {}}
        for t in rows:
            assets["Ticket"][str(t["id"])] = {**t, "article_ids": self._expanded(t)["article_ids"]}
            assets["Group"][str(t["group_id"])] = self.groups[t["group_id"]]
            for uid in {t["owner_id"], t["customer_id"], t["created_by_id"], t["updated_by_id"]}:
                if uid in self.users:
                    assets["User"][str(uid)] = self.users[uid].json()
        return {"tickets": [t["id"] for t in rows], "tickets_count": len(rows), "assets": assets}

    def _like(self, ticket: dict[str, Any], query: str) -> bool:
        """The SQL fallback: `%query%` (with `*` removed) over title, number and article subject/body/from/to."""
        needle = query.replace("*", "").lower()
        texts = [ticket["title"], ticket["number"]]
        for a in self.articles.values():
            if a["ticket_id"] == ticket["id"]:
                texts += [a["subject"] or "", a["body"], a["from"] or "", a["to"] or ""]
        return any(needle in str(t).lower() for t in texts)

    def _field(self, ticket: dict[str, Any], name: str) -> Any:
        name = name.removeprefix("ticket.")
        names = {"group": self.groups, "priority": self.priorities, "state": self.states}
        base = name.removesuffix(".name")
        if base in names:
            return names[base][ticket[f"{base}_id"]]["name"]
        return ticket.get(name)

    def _es_match(self, ticket: dict[str, Any], query: str) -> bool:
        """A small subset of the query-string syntax; terms are ANDed as Zammad's default operator does."""
        for term in _terms(query):
            if term in ("AND", "*"):
                continue
            m = re.fullmatch(r"([\w.]+):(>=|<=|>|<)?(.*)", term)
            if m is None:
                if not self._like(ticket, term.strip('"')):
                    return False
                continue
            name, op, raw = m.group(1), m.group(2), m.group(3).strip('"')
            value = self._field(ticket, name)
            if op:
                if value is None:
                    return False
                left = parse_ts(value) if name.endswith("_at") else float(value)
                right = self._es_time(raw) if name.endswith("_at") else float(raw)
                ok = {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
                if not ok:
                    return False
            elif raw != "*" and str(value).lower() != raw.lower():
                return False
        return True

    def _es_time(self, raw: str) -> datetime:
        m = re.fullmatch(r"now(?:([+-])(\d+)([smhdwMy]))?", raw)
        if m is None:
            return parse_ts(raw)
        if not m.group(1):
            return self.now
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}[m.group(3)]
        delta = timedelta(seconds=int(m.group(2)) * unit)
        return self.now + delta if m.group(1) == "+" else self.now - delta

    def _matches_condition(self, ticket: dict[str, Any], condition: dict[str, Any]) -> bool:
        for attribute, spec in condition.items():
            if not isinstance(spec, dict):
                raise HttpError(422, f"Invalid condition for '{attribute}'")
            operator = str(spec.get("operator", "is"))
            wanted = spec.get("value")
            value = self._field(ticket, attribute)
            if operator in ("is", "is not"):
                values = wanted if isinstance(wanted, list) else [wanted]
                hit = str(value) in {str(v) for v in values} if value is not None else None in values
                if hit != (operator == "is"):
                    return False
            elif operator in ("after (absolute)", "before (absolute)"):
                if value is None:
                    return False
                left, right = parse_ts(str(value)), parse_ts(str(wanted))
                if not (left > right if operator.startswith("after") else left < right):
                    return False
            elif operator in ("contains", "contains not"):
                if (str(wanted).lower() in str(value or "").lower()) != (operator == "contains"):
                    return False
            else:
                raise HttpError(422, f"Invalid operator '{operator}' for '{attribute}'")
        return True


def _rails_params(query: dict[str, list[str]]) -> dict[str, Any]:
    """Rack's nested query params: `condition[ticket.state_id][value][]=1` becomes nested dicts and lists."""
    params: dict[str, Any] = {}
    for key, values in query.items():
        parts = re.findall(r"\[([^\]]*)\]", key)
        head = key.split("[", 1)[0]
        if not parts:
            params[head] = values[-1]
            continue
        node = params.setdefault(head, {})
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts[-1] == "":
            # `a[b][]=1&a[b][]=2`: the list belongs to the parent key
            parent = params if len(parts) == 1 else _walk(params[head], parts[:-2])
            parent[head if len(parts) == 1 else parts[-2]] = list(values)
        else:
            node[parts[-1]] = values[-1]
    return params


def _walk(node: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    for part in parts:
        node = node[part]
    return node


def _terms(query: str) -> list[str]:
    return re.findall(r'[\w.]+:(?:>=|<=|>|<)?"[^"]*"|"[^"]*"|\S+', query)


def _order(rows: list[dict[str, Any]], sort_by: Any, order_by: Any) -> list[dict[str, Any]]:
    """`sort_by`/`order_by` as lists or comma strings; Zammad's default is `updated_at desc`."""
    keys = _as_list(sort_by) or ["updated_at"]
    orders = _as_list(order_by) or ["desc"]
    for i in reversed(range(len(keys))):
        key, desc = keys[i], (orders[i] if i < len(orders) else orders[-1]).lower() == "desc"
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        rows = sorted(present, key=lambda r, k=key: r[k], reverse=desc) + missing
    return rows


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _paginate(params: dict[str, Any], *, default: int, maximum: int) -> tuple[int, int]:
    """CanPaginate: per_page (alias limit) capped at the maximum, page from 1."""
    raw = params.get("per_page") or params.get("limit") or default
    limit = min(int(raw), maximum)
    page = int(params.get("page") or 1)
    return limit, max(0, (page - 1) * limit)


def _type_id(name: str) -> int:
    return next(k for k, v in ARTICLE_TYPES.items() if v == name)


def _sender_id(name: str) -> int:
    return next(k for k, v in SENDERS.items() if v == name)
