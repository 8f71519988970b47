"""The Znuny / OTRS / OTOBO connector: TicketSearch + TicketGet to read, one TicketUpdate to write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from connectors.base import Applied, Connector, ConnectorConfig, Named, Outcome, Page, Skipped, Ticket, TicketUpdate
from connectors.errors import ConfigError, TicketError, TransientError
from connectors.znuny.client import ApiError, FaultError, ZnunyClient
from connectors.znuny.config import ZnunyConfig
from connectors.znuny.mapping import TIME_FORMAT, Cursor, shift, to_ticket

GET_BATCH = 50  # ids per TicketGet, to keep the URL short
SEARCH_CAP = 500  # GenericInterface TicketSearch SearchLimit in a stock installation
MAX_SPLITS = 40  # halvings of a close-time window before settling for a one-second window
FLOOR = "2000-01-01 00:00:00"
_TICKET_CODES = ("AccessDenied", "InvalidParameter", "MissingParameter")


class ZnunyConnector(Connector):
    """GenericTicketConnectorREST has no queue or priority listing, so the taxonomy comes from the config."""

    type_name = "znuny"
    config_model = ZnunyConfig
    # Each request stands alone (the server closes every connection); the only shared state is the SessionID,
    # and two calls that both find it expired each log in once and go on with a valid session.
    concurrent_apply = True

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

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> ZnunyConnector:
        if not isinstance(config, ZnunyConfig):
            raise ConfigError(f"{config.type}: expected a ZnunyConfig, got {type(config).__name__}")
        return cls(config, client)

    async def check(self) -> None:
        """A fresh login (when we have a password) and one tiny search with the session it gave."""
        await self._api.login()
        await self._search([("Queues", self.config.inbound_queues[0]), ("Limit", "1")])

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
        pairs.sort(key=lambda row: (row[0][0], int(row[0][1]) if row[0][1].isdigit() else 0))
        tickets = [self._ticket(r) for _, r in pairs]
        more = len(fresh) > limit or len(ids) >= want
        base = after or Cursor(FLOOR)
        next_cursor = base.after(p for p, _ in pairs).encode() if pairs else cursor
        return Page(tickets, next_cursor, more=more)

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
        if not tid.isdigit():
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
        try:
            await self._api.patch(f"/Ticket/{tid}", body)
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

    async def _search(self, params: Sequence[tuple[str, str]]) -> list[str]:
        try:
            data = await self._api.get("/Ticket", params)
        except ApiError as exc:
            raise TransientError(f"{self._label}: TicketSearch failed: {exc.code}: {exc.message}") from None
        ids = data.get("TicketID", [])  # an empty search is `{}`, a single hit still a list
        if not isinstance(ids, list):
            ids = [ids]
        return [str(i) for i in ids]

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
        data = await self._api.get(f"/Ticket/{','.join(ids)}", params)
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
