"""The Request Tracker 5 connector: TicketSQL searches to read, one PUT and one private comment to write."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors._ids import is_number
from connectors._signed import signed_json
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
from connectors.errors import ConnectorConfigError, TicketError, TransientError
from connectors.rt.client import RTClient
from connectors.rt.config import RTConfig
from connectors.rt.mapping import (
    ClosedCursor,
    NewCursor,
    any_of,
    message_text,
    number,
    parse_time,
    push_ticket_ids,
    quote,
    ref_id,
    to_ticket,
)

FIELDS = "Subject,Status,Priority,Queue,Created,Resolved"
# TicketSQL reads a date in the agent's own time zone, which REST 2 does not tell. The closed-ticket search
# asks from this much earlier than the cursor (the widest UTC offset), and drops what the cursor already covers
# by the exact UTC dates in the answer: a wrong guess of the zone can then only re-read, never skip.
ZONE_SLACK = timedelta(hours=14)
MESSAGE_TRANSACTIONS = ("Create", "Correspond")
MESSAGE_TRIES = 3  # transactions looked at for the first message before the ticket counts as having none
ATTACHMENT_FIELDS = "ContentType,Content,Filename"  # RT 5.0.3 answers 500 when `Parent` is asked for


class RTConnector(Connector):
    """REST 2 lists queues, so queue names are checked against RT; priority names come from `priorities`."""

    type_name = "rt"
    config_model = RTConfig
    push_secret_key = "push_secret"
    concurrent_apply = True  # every call stands alone (no session), so updates of two tickets may overlap
    names_from_config: ClassVar[dict[str, str]] = {"priority": "priorities"}

    def __init__(self, config: RTConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._label = config.name or config.type
        self._api = RTClient(config, client, self._label)
        self._queues: dict[str, str] = {}  # queue id -> name, as this agent sees them
        self._unseen: set[str] = set()  # queue ids not in the last listing (no SeeQueue): not listed again for them

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> RTConnector:
        if not isinstance(config, RTConfig):
            raise ConnectorConfigError(f"rt connector got a {type(config).__name__}, not an RTConfig")
        return cls(config, client)

    def ticket_url(self, ticket_id: str) -> str:
        return self.config.ticket_url(ticket_id)

    # -- check ----------------------------------------------------------------------------------------

    async def check(self) -> str:
        """Credentials, every configured queue and priority name, and the rights ticketd needs, on the live RT."""
        visible = set((await self._refresh_queues()).values())
        keys = (("inbound_queues", self.config.inbound_queues), ("queues", self.config.queues))
        unknown = [f"queue {name!r} (in {key!r})" for key, names in keys for name in names if name not in visible]
        if unknown:
            raise ConnectorConfigError(
                f"{self._label}: RT shows this agent no {', '.join(unknown)}: check the names (they are "
                "case-sensitive) and that the agent has SeeQueue there"
            )
        no_create = [name for name in dict.fromkeys(self.config.queues) if not await self._may_create_in(name)]
        if no_create:
            raise ConnectorConfigError(
                f"{self._label}: the agent lacks CreateTicket on queue(s) {', '.join(map(repr, no_create))} (in "
                "'queues'); RT moves a ticket into a queue only for someone who may create tickets there"
            )
        rights = await self._check_ticket_rights()
        priorities = await self._verify_priorities()
        if self.config.user:
            session = "on a web session" if self._api.on_session else "no web session: RT checks the password per call"
            who = f"user {self.config.user!r} ({session})"
        else:
            who = "an auth token (RT checks it on every call)"
        return (
            f"REST 2 as {who}; queues verified: {len(self.config.inbound_queues)} inbound, "
            f"{len(self.config.queues)} to route into (CreateTicket on each); {rights}; {priorities}"
        )

    async def _may_create_in(self, name: str) -> bool:
        qid = next(i for i, n in self._queues.items() if n == name)
        record = await self._api.get(f"/queue/{qid}")
        links = record.get("_hyperlinks") if isinstance(record, Mapping) else None
        return any(isinstance(link, Mapping) and link.get("ref") == "create" for link in links or [])

    async def _check_ticket_rights(self) -> str:
        """ShowTicket, ModifyTicket and CommentOnTicket, read off a ticket in a configured queue: REST 2
        offers a ticket's comment link only with CommentOnTicket and its lifecycle actions only with ModifyTicket."""
        query = any_of("Queue", dict.fromkeys([*self.config.inbound_queues, *self.config.queues]))
        data = await self._api.get("/tickets", [("query", query), ("per_page", "1"), ("fields", "Queue")])
        items = data.get("items") if isinstance(data, Mapping) else None
        if not items:
            return "ticket rights unverified: the agent sees no ticket in a configured queue yet"
        tid = str(items[0].get("id"))
        record = await self._api.get(f"/ticket/{tid}")
        refs = {link.get("ref") for link in record.get("_hyperlinks") or [] if isinstance(link, Mapping)}
        queue = await self._queue_name(ref_id(record.get("Queue")))
        lacking = [
            right for right, ref in (("CommentOnTicket", "comment"), ("ModifyTicket", "lifecycle")) if ref not in refs
        ]
        if lacking:
            raise ConnectorConfigError(
                f"{self._label}: the agent lacks {' and '.join(lacking)} on queue {queue!r} (seen on ticket {tid}); "
                "ticketd comments on and changes the tickets it routes"
            )
        return f"ShowTicket, ModifyTicket and CommentOnTicket seen on ticket {tid} in {queue!r}"

    async def _verify_priorities(self) -> str:
        """RT has no listing of priority names, but TicketSQL translates a known name into its number: a name
        and its configured number must then find the same tickets. With no ticket at that number, it stays open."""
        verified, unverified, wrong = [], [], []
        for name, value in self.config.priorities.items():
            by_number = await self._count(f"Priority = {value}")
            try:
                by_name = await self._count(f"Priority = {quote(name)}")
            except ConnectorConfigError:
                by_name = -1  # RT refused the name outright (a database that will not compare text with numbers)
            if by_name != by_number:
                wrong.append(f"{name!r}: {value}")
            elif by_number:
                verified.append(name)
            else:
                unverified.append(name)
        if wrong:
            raise ConnectorConfigError(
                f"{self._label}: RT does not know priority {', '.join(wrong)} (in 'priorities'): the name and the "
                "number find different tickets; use the names and numbers of RT's PriorityAsString"
            )
        text = f"priorities verified by search: {', '.join(verified) or 'none'}"
        return text + (f" (no ticket yet at {', '.join(unverified)}: unverified)" if unverified else "")

    async def _count(self, query: str) -> int:
        data = await self._api.get("/tickets", [("query", query), ("per_page", "1"), ("fields", "id")])
        total = data.get("total") if isinstance(data, Mapping) else None
        if not isinstance(total, int):
            raise TransientError(f"{self._label}: GET /REST/2.0/tickets answered without a total")
        return total

    # -- taxonomy -------------------------------------------------------------------------------------

    async def list_queues(self) -> list[Named]:
        """The queues this agent can see (SeeQueue), by name."""
        return [Named(qid, name) for qid, name in (await self._refresh_queues()).items()]

    async def list_priorities(self) -> list[Named]:
        """The configured `priorities` (default RT 5's Low, Medium, High): REST 2 cannot list them."""
        return [Named(str(value), name) for name, value in self.config.priorities.items()]

    async def _refresh_queues(self) -> dict[str, str]:
        queues: dict[str, str] = {}
        async for items in self._api.pages("/queues/all", [("fields", "Name")], 100):
            for item in items:
                if isinstance(item, Mapping) and item.get("id") is not None and item.get("Name"):
                    queues[str(item["id"])] = str(item["Name"])
        self._queues = queues
        self._unseen.clear()
        return queues

    async def _queue_name(self, qid: str | None) -> str:
        """A queue id's name; a queue the agent cannot see keeps its id, so it never matches a configured name."""
        if qid is None:
            return ""
        if qid not in self._queues and qid not in self._unseen:
            await self._refresh_queues()
            if qid not in self._queues:
                self._unseen.add(qid)
        return self._queues.get(qid, f"queue #{qid}")

    # -- reading --------------------------------------------------------------------------------------

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        """Oldest id first; the ids just below the cursor are asked again (see LOOKBACK_IDS), delivered ones dropped."""
        limit = max(1, limit)
        after = NewCursor.decode(cursor)
        query = (
            f"{any_of('Queue', self.config.inbound_queues)} AND {any_of('Status', self.config.new_statuses)} "
            f"AND id > {after.floor}"
        )
        fresh: list[Mapping[str, Any]] = []
        async with self._search(query, "id") as pages:
            async for items in pages:
                fresh += [r for r in items if isinstance(r, Mapping) and _id(r) not in after.seen]
                if len(fresh) > limit:
                    break
        chosen = fresh[:limit]
        tickets = [t for t in [await self._ticket(r) for r in chosen] if t is not None]
        next_cursor = after.after(_id(r) for r in chosen).encode() if chosen else cursor
        return Page(tickets, next_cursor, more=len(fresh) > limit)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        """By Resolved date, then id; the search starts ZONE_SLACK before the cursor's look-back, and what the
        cursor covers is dropped by the exact UTC dates in the answer."""
        limit = max(1, limit)
        after = ClosedCursor.decode(since)
        query = any_of("Status", self.config.closed_statuses)
        if after is not None:
            query += f" AND Resolved > {quote((after.floor - ZONE_SLACK).strftime('%Y-%m-%d %H:%M:%S'))}"
        rows: list[tuple[tuple[datetime, int], Mapping[str, Any]]] = []
        async with self._search(query, "Resolved") as pages:
            async for items in pages:
                for row in items:
                    if not isinstance(row, Mapping):
                        continue
                    at = parse_time(row.get("Resolved"), ticket_id=str(row.get("id")))
                    if at is not None and (after is None or not after.covers(_id(row), at)):
                        rows.append(((at, _id(row)), row))
                if len(rows) > limit:
                    break
        rows.sort(key=lambda kv: kv[0])
        chosen = rows[:limit]
        tickets = [t for t in [await self._ticket(row) for _, row in chosen] if t is not None]
        next_cursor = ClosedCursor.after(after, [(tid, at) for (at, tid), _ in chosen])
        return Page(tickets, next_cursor.encode() if next_cursor else since, more=len(rows) > limit)

    def _search(self, query: str, order: str) -> aclosing[AsyncGenerator[list[Any], None]]:
        """The search's pages in `order`, then id; closed when the caller stops reading early."""
        params = [("query", query), ("fields", FIELDS), ("orderby", order), ("order", "ASC")]
        params += [("orderby", "id"), ("order", "ASC")] if order != "id" else []
        return aclosing(self._api.pages("/tickets", params, self.config.per_page))

    async def fetch_ticket(self, ticket_id: str) -> Ticket | None:
        """A pushed ticket, if it is still new work (an inbound queue, a new status); None if gone or handled.

        deploy/rt's scrip runs in RT's TransactionBatch stage, after the ticket and its first message are committed.
        """
        if not is_number(ticket_id):
            return None
        try:
            record = await self._api.get(f"/ticket/{ticket_id}", ticket_id=ticket_id)
        except TicketError:
            return None  # deleted, or not ours to read
        if not isinstance(record, Mapping) or record.get("Status") not in self.config.new_statuses:
            return None
        if await self._queue_name(ref_id(record.get("Queue"))) not in self.config.inbound_queues:
            return None
        return await self._ticket(record)

    async def _ticket(self, row: Mapping[str, Any]) -> Ticket | None:
        """A search row or record with its first message; None if it vanished between search and read."""
        tid = str(row.get("id"))
        try:
            body = await self._first_message(tid)
        except TicketError:
            return None
        priority = row.get("Priority")
        return to_ticket(
            row,
            queue=await self._queue_name(ref_id(row.get("Queue"))),
            priority=self.config.priority_name(number(priority, ticket_id=tid)) if priority is not None else None,
            body=body,
        )

    async def _first_message(self, tid: str) -> str:
        """The text of the ticket's first message: the create's content, else the first correspondence."""
        tried = 0
        async with aclosing(self._api.pages(f"/ticket/{tid}/history", [("fields", "Type")], 50)) as pages:
            async for items in pages:
                for txn in items:
                    if not isinstance(txn, Mapping) or txn.get("Type") not in MESSAGE_TRANSACTIONS:
                        continue
                    text = await self._message(tid, txn)
                    if text is not None:
                        return text
                    tried += 1
                    if tried >= MESSAGE_TRIES:
                        return ""
        return ""

    async def _message(self, tid: str, txn: Mapping[str, Any]) -> str | None:
        """The message text of one of the ticket's transactions (None where it carries none)."""
        parts = await self._api.get(
            f"/transaction/{txn.get('id')}/attachments", [("fields", ATTACHMENT_FIELDS)], ticket_id=tid
        )
        items = parts.get("items") if isinstance(parts, Mapping) else None
        return message_text([p for p in items or [] if isinstance(p, Mapping)])

    # -- writing --------------------------------------------------------------------------------------

    async def apply(self, update: TicketUpdate) -> Outcome:
        """Read first; then one PUT of queue and priority (checked by reading again) and one private comment."""
        tid = update.ticket_id
        if not is_number(tid):
            raise TicketError("RT ticket ids are numbers", ticket_id=tid)
        want = self._priority_number(update.priority)
        queue, priority = await self._where(tid)
        priority_ok = want is None or self.config.priority_name(priority) == update.priority
        note = update.note or None
        if queue != update.expected_queue:
            if update.queue is not None and queue == update.queue and priority_ok:
                # Our own earlier move; its comment may not have been written yet (the two are separate calls).
                if note is not None and not await self._has_note(tid, note):
                    await self._comment(update, note)
                    return Applied(tid, ("note",))
                return Applied(tid)
            return Skipped(tid, f"ticket is in queue {queue!r} now, not {update.expected_queue!r}; left as it is")
        fields: dict[str, Any] = {}
        if update.queue is not None and update.queue != queue:
            fields["Queue"] = update.queue
        if want is not None and not priority_ok:
            fields["Priority"] = want  # a number: RT sets 0 for a name it does not know, and stores text on create
        if note is not None and not fields and await self._has_note(tid, note):
            note = None
        if fields:
            await update.guarded()
            messages = await self._api.request("PUT", f"/ticket/{tid}", body=fields, ticket_id=tid)
            await self._confirm(tid, fields, messages)
        if note is not None:
            await self._comment(update, note)
        changed = [k for k, f in (("queue", "Queue"), ("priority", "Priority")) if f in fields]
        return Applied(tid, tuple(changed + (["note"] if note is not None else [])))

    def _priority_number(self, name: str | None) -> int | None:
        if name is None:
            return None
        if name not in self.config.priorities:
            raise ConnectorConfigError(
                f"{self._label}: priority {name!r} is not in 'priorities' ({', '.join(self.config.priorities)})"
            )
        return self.config.priorities[name]

    async def _where(self, tid: str) -> tuple[str, int]:
        record = await self._api.get(f"/ticket/{tid}", ticket_id=tid)
        if not isinstance(record, Mapping):
            raise TransientError(f"{self._label}: GET /REST/2.0/ticket/{tid}: unexpected response shape")
        return await self._queue_name(ref_id(record.get("Queue"))), number(record.get("Priority"), ticket_id=tid)

    async def _confirm(self, tid: str, fields: Mapping[str, Any], messages: object) -> None:
        """RT answers a PUT with 200 and a list of messages even when it refused a field ("Permission Denied",
        "Queue X does not exist"), in the agent's language: what was written is read back instead."""
        queue, priority = await self._where(tid)
        missed = []
        if "Queue" in fields and queue != fields["Queue"]:
            missed.append(f"queue {fields['Queue']!r} (still {queue!r})")
        if "Priority" in fields and priority != fields["Priority"]:
            missed.append(f"priority {fields['Priority']} (still {priority})")
        if missed:
            said = "; ".join(str(m) for m in messages) if isinstance(messages, list) else ""
            raise TicketError(f"RT did not set {', '.join(missed)}: {said[:300]}", ticket_id=tid)

    async def _comment(self, update: TicketUpdate, note: str) -> None:
        """A private comment (an internal note; RT mails it to no requestor)."""
        body = {"Subject": self.config.note_subject, "Content": note, "ContentType": "text/plain"}
        await update.guarded()
        await self._api.request("POST", f"/ticket/{update.ticket_id}/comment", body=body, ticket_id=update.ticket_id)

    async def _has_note(self, tid: str, note: str) -> bool:
        """Whether our comment is there already: a Comment transaction with our subject and the same text."""
        async with aclosing(self._api.pages(f"/ticket/{tid}/history", [("fields", "Type,Data")], 100)) as pages:
            async for items in pages:
                for txn in items:
                    if not isinstance(txn, Mapping) or txn.get("Type") != "Comment":
                        continue
                    if str(txn.get("Data") or "").strip() != self.config.note_subject:
                        continue
                    if (await self._message(tid, txn) or "") == note.strip():
                        return True
        return False

    # -- push -----------------------------------------------------------------------------------------

    def accepts_push(self) -> bool:
        return self.config.push_secret is not None

    def read_push(self, headers: Mapping[str, str], body: bytes) -> Push:
        """deploy/rt's scrip: `X-Ticketd-Signature: sha256=<HMAC-SHA256 of the raw body>` keyed by push_secret."""
        payload = signed_json(
            headers,
            body,
            key=secret(self.config.push_secret),
            key_name="push_secret",
            header="X-Ticketd-Signature",
            algorithm="sha256",
            what="the scrip's body",
        )
        return Push(push_ticket_ids(payload), delivery=headers.get("x-ticketd-delivery"))


def _id(row: Mapping[str, Any]) -> int:
    value = str(row.get("id"))
    if not is_number(value):
        raise TransientError(f"RT answered a ticket without a numeric id ({value!r})")
    return int(value)


__all__: Sequence[str] = ["RTConnector"]
