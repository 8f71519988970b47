"""The Znuny / OTRS / OTOBO connector: TicketSearch + TicketGet to read, one TicketUpdate to write."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors import _json as safe_json
from connectors._ids import is_number
from connectors.base import (
    Applied,
    Connector,
    ConnectorConfig,
    Named,
    Outcome,
    Page,
    Push,
    Skipped,
    Ticket,
    TicketUpdate,
    secret,
)
from connectors.errors import AuthError, ConnectorConfigError, NotReady, PushRejected, TicketError, TransientError
from connectors.znuny.client import ApiError, FaultError, NoAnswer, NoRoute, ZnunyClient
from connectors.znuny.config import ZnunyConfig
from connectors.znuny.mapping import TIME_FORMAT, Cursor, invoker_ticket_ids, shift, to_ticket
from connectors.znuny.routes import HOW_TO_ADD, LAYOUTS, Route, Routes

GET_BATCH = 50  # ids per TicketGet, to keep the URL short
SEARCH_CAP = 500  # GenericInterface TicketSearch SearchLimit in a stock installation
MAX_SPLITS = 40  # halvings of a close-time window before settling for a one-second window
FLOOR = "2000-01-01 00:00:00"
_TICKET_CODES = ("AccessDenied", "InvalidParameter", "MissingParameter")
NO_ANSWER_TRIES = 3  # empty replies in a row before the web service name, not the network, is to blame
PROBE_ID = "0"  # a TicketID no ticket has: TicketGet and TicketUpdate answer their own error for it


class ZnunyConnector(Connector):
    """GenericTicketConnectorREST has no queue or priority listing, so the taxonomy comes from the config."""

    type_name = "znuny"
    config_model = ZnunyConfig
    push_secret_key = "push_token"
    # Each request stands alone (KeepAlive or not, the pool gives concurrent calls their own connections); the only
    # shared state is the SessionID, and two calls that both find it expired each log in once and go on.
    concurrent_apply = True
    names_from_config: ClassVar[dict[str, str]] = {"queue": "queues", "priority": "priorities"}

    def __init__(self, config: ZnunyConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._label = config.name or config.type
        self._api = ZnunyClient(
            client,
            config.base_url,
            label=self._label,
            user=config.user,
            password=config.password,
            session_id=config.session_id,
        )
        configured = config.routes.resolve() if config.routes is not None else None
        self._routes: Routes = configured or LAYOUTS[0]  # SessionCreate, TicketGet, TicketUpdate: as configured
        self._api.session_route = self._routes.session_create
        # TicketSearch is where the stock layouts differ: tried in order on first use, then kept.
        self._search_candidates: tuple[Route, ...] = (
            (configured.ticket_search,) if configured else tuple(r.ticket_search for r in LAYOUTS)
        )
        self._search_route: Route | None = None
        self._contacted = False

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> ZnunyConnector:
        if not isinstance(config, ZnunyConfig):
            raise ConnectorConfigError(f"{config.type}: expected a ZnunyConfig, got {type(config).__name__}")
        return cls(config, client)

    def ticket_url(self, ticket_id: str) -> str:
        """AgentTicketZoom of the ticket (its TicketID is the id ticketd knows it by)."""
        return self.config.agent_url(ticket_id)

    async def check(self) -> str:
        """A fresh login, every route ticketd uses probed anew, and every configured name checked by search."""
        self._contacted = False
        self._search_route = None
        await self._first_contact()
        ids = await self._search([("Limit", "1")])  # finds TicketSearch's route as on first use
        routes = self._routes
        if not await self._answers_as(routes.ticket_get, "TicketGet", ticket_id=PROBE_ID):
            raise self._missing("TicketGet", str(routes.ticket_get))
        if not await self._answers_as(routes.ticket_update, "TicketUpdate", ticket_id=PROBE_ID, body={}):
            raise self._missing("TicketUpdate", str(routes.ticket_update))
        names = await self._verify_names(ids)
        return f"web service {self.config.webservice!r}: {self.layout()}; {names}"

    def layout(self) -> str:
        """The routes in use, as `ticketd check` prints them (TicketSearch may still be unprobed)."""
        if self._search_route is None:
            return "layout not probed yet"
        layout = next((r for r in LAYOUTS if r.ticket_search == self._search_route), None)
        name = "routes from the config" if self.config.routes is not None or layout is None else layout.layout
        r = self._routes
        return (
            f"{name} (SessionCreate {r.session_create}, TicketSearch {self._search_route}, "
            f"TicketGet {r.ticket_get}, TicketUpdate {r.ticket_update})"
        )

    async def _first_contact(self) -> None:
        """Login (or a search with the configured session); Znuny answers an unknown web service with nothing."""
        if self._contacted:
            return
        for attempt in range(1, NO_ANSWER_TRIES + 1):
            try:
                if self.config.user and self.config.password is not None:
                    await self._api.login()
                else:
                    await self._api.call(self._search_candidates[0], params=[("Limit", "1")])
                break
            except NoAnswer:
                if attempt == NO_ANSWER_TRIES:
                    raise ConnectorConfigError(
                        f"{self._label}: webservice {self.config.webservice!r}: {self.config.base_url} sent no "
                        f"answer at all, {NO_ANSWER_TRIES} times in a row; Znuny does that for a web service name "
                        "it does not have: check 'webservice' (Admin -> Web Services lists the names)"
                    ) from None
            except NoRoute as exc:
                if self.config.user and self.config.password is not None:
                    raise self._missing("SessionCreate", str(self._routes.session_create)) from exc
                break  # a session-only config: the search layout is found on first use
            except (ApiError, AuthError):
                self._contacted = True  # the web service answered; the caller meets the error itself
                raise
        self._contacted = True

    async def _answers_as(
        self,
        route: Route,
        operation: str,
        *,
        ticket_id: str,
        body: dict[str, Any] | None = None,
    ) -> bool:
        """Whether `route` reaches `operation`: an answer, or an error object that operation raised."""
        try:
            await self._api.call(route, ticket_id=ticket_id, body=body)
        except NoRoute:
            return False
        except ApiError as exc:
            return exc.code.startswith(f"{operation}.")  # another operation behind this route: not ours
        except FaultError:
            return True
        return True

    def _missing(self, operation: str, tried: str) -> ConnectorConfigError:
        return ConnectorConfigError(
            f"{self._label}: web service {self.config.webservice!r} at {self.config.base_url} has no {operation} "
            f"operation (tried {tried}); {HOW_TO_ADD}"
        )

    async def _verify_names(self, ids: Sequence[str]) -> str:
        """Znuny has no queue list, but a search naming an unknown queue or priority finds nothing at all.

        So each configured name is searched together with the queue (priority) of a ticket that exists
        (one of `ids`): a known name finds at least that ticket, an unknown one empties the whole search.
        """
        if not ids:
            return "queue and priority names unverified: the agent sees no ticket to compare against"
        sample = (await self._get_many([ids[0]], articles=False))[0]
        checks = [
            ("Queues", "queue", "inbound_queues", self.config.inbound_queues, str(sample.get("Queue"))),
            ("Queues", "queue", "queues", self.config.queues, str(sample.get("Queue"))),
            ("Priorities", "priority", "priorities", self.config.priorities, str(sample.get("Priority"))),
        ]
        unknown: list[str] = []
        verified = 0
        for param, kind, key, names, anchor in checks:
            for name in dict.fromkeys(names):
                if name != anchor and not await self._search([(param, name), (param, anchor), ("Limit", "1")]):
                    unknown.append(f"{kind} {name!r} (in {key!r})")
                else:
                    verified += 1
        if unknown:
            raise ConnectorConfigError(
                f"{self._label}: the helpdesk has no {', '.join(unknown)}: TicketSearch does not know these names; "
                "correct them in the connector's config (names are case-sensitive)"
            )
        return f"{verified} queue and priority names verified by search"

    async def list_queues(self) -> list[Named]:
        """Inbound plus configured `queues`: the stock web service cannot list queues."""
        names = dict.fromkeys([*self.config.inbound_queues, *self.config.queues])
        return [Named(id=name, name=name) for name in names]

    async def list_priorities(self) -> list[Named]:
        """Configured `priorities` (default: Znuny's stock five): the stock web service cannot list them."""
        return [Named(id=name, name=name) for name in dict.fromkeys(self.config.priorities)]

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        """Oldest first by create time; the cursor's second is asked again and its seen ids dropped."""
        after = Cursor.decode(cursor)
        seen = after.seen if after else frozenset()
        want = min(max(limit, 1) + len(seen) + 1, SEARCH_CAP)
        params = [("Queues", q) for q in self.config.inbound_queues]
        params += [("StateType", s) for s in self.config.new_state_types]
        params += [("SortBy", "Age"), ("OrderBy", "Up"), ("Limit", str(want))]
        if after:
            params.append(("TicketCreateTimeNewerDate", after.time))
        ids = await self._search(params)
        fresh = [i for i in ids if i not in seen]
        raws = await self._get_many(fresh[:limit])
        pairs = [((str(r.get("Created")), str(r.get("TicketID"))), r) for r in raws]
        pairs.sort(key=lambda row: (row[0][0], int(row[0][1]) if is_number(row[0][1]) else 0))
        tickets = [self._ticket(r) for _, r in pairs]
        more = len(fresh) > limit or len(ids) >= want
        base = after or Cursor(FLOOR)
        next_cursor = base.after(p for p, _ in pairs).encode() if pairs else cursor
        return Page(tickets, next_cursor, more=more)

    def accepts_push(self) -> bool:
        return self.config.push_token is not None

    def read_push(self, headers: Mapping[str, str], body: bytes) -> Push:
        """The TicketCreate invoker's request: the push_token as Basic auth password or `X-Ticketd-Token`."""
        token = secret(self.config.push_token)
        if not token:
            raise PushRejected("no push_token configured for this connector")
        given = headers.get("x-ticketd-token", "")
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if not given and scheme.lower() == "basic":
            try:
                given = base64.b64decode(value, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                given = ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise PushRejected("no or a wrong push_token (Basic auth password or X-Ticketd-Token)")
        try:
            payload = safe_json.loads(body)
        except ValueError:
            raise ValueError("the invoker's body is not JSON") from None
        return Push(invoker_ticket_ids(payload))

    async def fetch_ticket(self, ticket_id: str) -> Ticket | None:
        """A pushed ticket, if it is still new (an inbound queue, a new state type); None if gone or handled.

        NotReady while it has no article at all: Znuny raises TicketCreate before the first article is
        written, and its REST TicketCreate discards its objects (so runs the event's invokers) before it
        writes the article. A push that came that early must not classify an empty ticket; the daemon asks
        again a moment later.
        """
        if not is_number(ticket_id):
            return None
        try:
            raws = await self._get_many([ticket_id])
        except TicketError:
            return None  # deleted, or not ours to read
        for raw in raws:
            if raw.get("Queue") not in self.config.inbound_queues:
                return None
            if raw.get("StateType") not in self.config.new_state_types:
                return None
            if not raw.get("Article"):
                raise NotReady("pushed before its first article was written", ticket_id=ticket_id)
            return self._ticket(raw)
        return None

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        """By close time. TicketSearch cannot sort by it, so the window is halved until it fits one page."""
        after = Cursor.decode(since)
        for _ in range(MAX_SPLITS):
            hi, rows, complete = await self._closed_window(after, limit)
            if rows or hi is None:
                break
            after = Cursor(shift(hi, 1))  # an empty bounded window: go on after it instead of an empty page
        page = rows[:limit]
        tickets = [self._ticket(raw) for _, raw in page]
        origin = after or Cursor(FLOOR)
        if len(rows) > limit:
            return Page(tickets, origin.after(p for p, _ in page).encode(), more=True)
        if hi is not None:  # the whole window is delivered; the next page starts after it
            return Page(tickets, Cursor(shift(hi, 1)).encode(), more=True)
        next_cursor = origin.after(p for p, _ in page).encode() if page else (after.encode() if after else since)
        return Page(tickets, next_cursor, more=not complete)

    async def _closed_window(
        self, after: Cursor | None, limit: int
    ) -> tuple[str | None, list[tuple[tuple[str, str], dict[str, Any]]], bool]:
        """A close-time window [lo, hi] holding fewer tickets than a search returns, and its unseen tickets."""
        seen = after.seen if after else frozenset()
        want = min(max(limit, 1) + len(seen) + 1, SEARCH_CAP)
        lo = after.time if after else None
        hi: str | None = None
        base = [("StateType", s) for s in self.config.closed_state_types]
        ids: list[str] = []
        for _ in range(MAX_SPLITS):
            params = [*base, ("SortBy", "Age"), ("OrderBy", "Up"), ("Limit", str(want))]
            if lo is not None:
                params.append(("TicketCloseTimeNewerDate", lo))
            if hi is not None:
                params.append(("TicketCloseTimeOlderDate", hi))
            ids = await self._search(params)
            if len(ids) < want or (hi is not None and hi == (lo or FLOOR)):
                break
            hi = self._midpoint(lo or FLOOR, hi)
        rows = []
        for raw in await self._get_many(ids, extended=True):
            closed = str(raw.get("Closed") or raw.get("Changed") or "")
            if (lo is not None and closed < lo) or (hi is not None and closed > hi):
                continue  # its latest close lies in another window; it is delivered there
            if after and closed == after.time and str(raw["TicketID"]) in seen:
                continue
            rows.append(((closed, str(raw["TicketID"])), raw))
        rows.sort(key=lambda row: (row[0][0], int(row[0][1])))
        return hi, rows, len(ids) < want

    async def apply(self, update: TicketUpdate) -> Outcome:
        """Read first, then at most one TicketUpdate carrying queue, priority and the note together."""
        tid = update.ticket_id
        if not is_number(tid):
            raise TicketError("Znuny ticket ids are numbers", ticket_id=tid)
        current = (await self._get_many([tid], articles=False, strict=True))[0]
        queue, priority = current.get("Queue"), current.get("Priority")
        priority_ok = update.priority is None or priority == update.priority
        if queue != update.expected_queue:
            if update.queue is not None and queue == update.queue and priority_ok:
                return Applied(tid)  # our own earlier move: nothing left to do
            return Skipped(tid, f"ticket is in queue {queue!r} now, not {update.expected_queue!r}; left as it is")
        fields: dict[str, str] = {}
        if update.queue is not None and update.queue != queue:
            fields["Queue"] = update.queue
        if update.priority is not None and update.priority != priority:
            fields["Priority"] = update.priority
        note = update.note or None
        if note is not None and not fields and await self._has_note(tid, note):
            note = None  # a note-only update that already happened
        if not fields and note is None:
            return Applied(tid)
        body: dict[str, Any] = {}
        if fields:
            body["Ticket"] = fields
        if note is not None:
            body["Article"] = {
                "CommunicationChannel": "Internal",
                "IsVisibleForCustomer": 0,
                "SenderType": "agent",
                "Subject": self.config.note_subject,
                "Body": note,
                "ContentType": "text/plain; charset=utf8",
            }
        await update.guarded()
        try:
            await self._call(self._routes.ticket_update, ticket_id=tid, body=body)
        except ApiError as exc:
            raise self._ticket_error(exc, tid) from None
        except FaultError as exc:
            # Znuny answers HTTP 500 + faultstring when the agent lacks rw on the target queue: permission, not outage.
            raise TicketError(f"TicketUpdate refused: {exc}", ticket_id=tid) from None
        changed = [k for k, f in (("queue", "Queue"), ("priority", "Priority")) if f in fields]
        return Applied(tid, tuple(changed + (["note"] if note is not None else [])))

    # -- helpers ----------------------------------------------------------------------------------

    def _ticket(self, raw: dict[str, Any]) -> Ticket:
        return to_ticket(raw, self.config.zone)

    async def _call(
        self,
        route: Route,
        *,
        ticket_id: str | None = None,
        params: Sequence[tuple[str, str]] = (),
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        await self._first_contact()
        return await self._api.call(route, ticket_id=ticket_id, params=params, body=body)

    async def _search(self, params: Sequence[tuple[str, str]]) -> list[str]:
        try:
            data = await self._find_search(params)
        except ApiError as exc:
            raise TransientError(f"{self._label}: TicketSearch failed: {exc.code}: {exc.message}") from None
        ids = data.get("TicketID", [])  # an empty search is `{}`, a single hit still a list
        if not isinstance(ids, list):
            ids = [ids]
        return [str(i) for i in ids]

    async def _find_search(self, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """TicketSearch at its known route, or at the first candidate route that answers as TicketSearch."""
        if self._search_route is not None:
            return await self._call(self._search_route, params=params)
        for route in self._search_candidates:
            try:
                data = await self._call(route, params=params)
            except NoRoute:
                continue
            except ApiError as exc:
                if not exc.code.startswith("TicketSearch."):
                    continue  # another operation lives at this route
                self._search_route = route
                raise
            self._search_route = route
            return data
        raise self._missing("TicketSearch", ", ".join(map(str, self._search_candidates)))

    async def _get_many(
        self, ids: Sequence[str], *, articles: bool = True, extended: bool = False, strict: bool = False
    ) -> list[dict[str, Any]]:
        """TicketGet in batches; one inaccessible id fails a whole batch, so then ask one by one."""
        params: list[tuple[str, str]] = [("Extended", "1")] if extended else []
        if articles:
            params += [("AllArticles", "1"), ("ArticleSenderType", "customer"), ("ArticleOrder", "ASC")]
            params += [("ArticleLimit", "1")]
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), GET_BATCH):
            batch = list(ids[start : start + GET_BATCH])
            try:
                out += await self._ticket_get(batch, params)
            except ApiError as exc:
                if strict or len(batch) == 1 or exc.kind != "AccessDenied":
                    raise self._ticket_error(exc, batch[0] if len(batch) == 1 else None) from None
                for tid in batch:
                    try:
                        out += await self._ticket_get([tid], params)
                    except ApiError as one:
                        if one.kind != "AccessDenied":
                            raise self._ticket_error(one, tid) from None
        if articles:
            for raw in out:
                if not raw.get("Article"):  # no customer article: fall back to the first article at all
                    raw["Article"] = await self._first_article(str(raw["TicketID"]))
        return out

    async def _ticket_get(self, ids: list[str], params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        data = await self._call(self._routes.ticket_get, ticket_id=",".join(ids), params=params)
        tickets = data.get("Ticket")
        if not isinstance(tickets, list) or not all(isinstance(t, dict) for t in tickets):
            raise TransientError(f"{self._label}: TicketGet answered without a Ticket list")
        return tickets

    async def _first_article(self, tid: str) -> list[dict[str, Any]]:
        params = [("AllArticles", "1"), ("ArticleOrder", "ASC"), ("ArticleLimit", "1")]
        try:
            raw = (await self._ticket_get([tid], params))[0]
        except ApiError:
            return []
        articles = raw.get("Article")
        return [a for a in articles if isinstance(a, dict)] if isinstance(articles, list) else []

    async def _has_note(self, tid: str, note: str) -> bool:
        """Whether our note is already there, for updates that change nothing else (no other idempotence key)."""
        params = [("AllArticles", "1"), ("ArticleSenderType", "agent")]
        try:
            raw = (await self._ticket_get([tid], params))[0]
        except ApiError as exc:
            raise self._ticket_error(exc, tid) from None
        articles = raw.get("Article") if isinstance(raw.get("Article"), list) else []
        return any(
            isinstance(a, dict)
            and a.get("Subject") == self.config.note_subject
            and str(a.get("Body", "")).strip() == note.strip()
            for a in articles or []
        )

    def _ticket_error(self, exc: ApiError, tid: str | None) -> Exception:
        if exc.kind in _TICKET_CODES:
            return TicketError(f"{exc.code}: {exc.message}", ticket_id=tid)
        return TransientError(f"{self._label}: {exc.code}: {exc.message}")

    def _midpoint(self, lo: str, hi: str | None) -> str:
        start = datetime.strptime(lo, TIME_FORMAT)
        now = datetime.now(self.config.zone).replace(tzinfo=None)
        end = datetime.strptime(hi, TIME_FORMAT) if hi else now + timedelta(days=1)
        return (start + (end - start) / 2).replace(microsecond=0).strftime(TIME_FORMAT)
