"""Zammad connector: new tickets via condition search (works with or without Elasticsearch), one PUT per update."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

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
    validate_names,
)
from connectors.errors import ConnectorConfigError, TicketError, TransientError
from connectors.zammad.client import ZammadClient
from connectors.zammad.config import ZammadConfig
from connectors.zammad.mapping import (
    decode_cursor,
    encode_cursor,
    format_time,
    parse_time,
    tickets_from_search,
    to_ticket,
    webhook_ticket_ids,
)

# Zammad's "after (absolute)" is strict; we ask from a little earlier and drop what the cursor already covers,
# so tickets created in the same instant as the last delivered one are not lost.
_SLACK = timedelta(seconds=1)
_MAX_PAGES = 1000


class ZammadConnector(Connector):
    """Zammad REST API v1; query-string search is avoided because it only filters with Elasticsearch."""

    type_name = "zammad"
    config_model = ZammadConfig
    push_secret_key = "webhook_secret"

    def __init__(self, config: ZammadConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._api = ZammadClient(config, client)
        self._ids: dict[str, dict[str, int]] = {}

    @classmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> ZammadConnector:
        if not isinstance(config, ZammadConfig):
            raise ConnectorConfigError(f"zammad connector got a {type(config).__name__}, not a ZammadConfig")
        return cls(config, client)

    def ticket_url(self, ticket_id: str) -> str:
        """The ticket's zoom view in Zammad's web app."""
        return f"{self._config.url.rstrip('/')}/#ticket/zoom/{quote(ticket_id, safe='')}"

    async def check(self) -> None:
        await self._api.get("/users/me")

    async def list_queues(self) -> list[Named]:
        return [Named(str(g["id"]), str(g["name"])) for g in await self._active("/groups")]

    async def list_priorities(self) -> list[Named]:
        return [Named(str(p["id"]), str(p["name"])) for p in await self._active("/ticket_priorities")]

    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        condition: dict[str, Any] = {
            "ticket.group_id": {"operator": "is", "value": await self._lookup("group", self._config.inbound_groups)},
            "ticket.state_id": {"operator": "is", "value": await self._lookup("state", self._config.new_states)},
        }
        return await self._page(condition, "created_at", cursor, limit)

    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        condition: dict[str, Any] = {"ticket.state_id": {"operator": "is", "value": await self._closed_state_ids()}}
        return await self._page(condition, "close_at", since, limit)

    def accepts_push(self) -> bool:
        return self._config.webhook_secret is not None

    def read_push(self, headers: Mapping[str, str], body: bytes) -> Push:
        """A trigger's webhook: `X-Hub-Signature: sha1=<HMAC-SHA1 of the raw body>` keyed by the signature token."""
        payload = signed_json(
            headers,
            body,
            key=secret(self._config.webhook_secret),
            key_name="webhook_secret",
            header="X-Hub-Signature",
            algorithm="sha1",
            what="the webhook body",
        )
        return Push(webhook_ticket_ids(payload), delivery=headers.get("x-zammad-delivery"))

    async def fetch_ticket(self, ticket_id: str) -> Ticket | None:
        """A pushed ticket, if it is still new (inbound group, new state); None if gone or already handled."""
        if not is_number(ticket_id):
            return None
        try:
            row = await self._api.get(f"/tickets/{ticket_id}", {"expand": "true"}, ticket_id=ticket_id)
            if not isinstance(row, Mapping):
                raise TransientError(f"zammad GET /api/v1/tickets/{ticket_id}: unexpected response shape")
            if row.get("group") not in self._config.inbound_groups or row.get("state") not in self._config.new_states:
                return None
            articles = await self._api.get(f"/ticket_articles/by_ticket/{ticket_id}", ticket_id=ticket_id)
        except TicketError:
            return None  # deleted, or not ours to read: nothing to triage
        return to_ticket(row, [a for a in articles or [] if isinstance(a, Mapping)])

    async def apply(self, update: TicketUpdate) -> Outcome:
        tid = update.ticket_id
        if not is_number(tid):
            raise TicketError("not a Zammad ticket id", ticket_id=tid)
        ticket = await self._api.get(f"/tickets/{tid}", {"expand": "true"}, ticket_id=tid)
        if not isinstance(ticket, Mapping):
            raise TransientError(f"zammad GET /api/v1/tickets/{tid}: unexpected response shape")
        group, priority = ticket.get("group"), ticket.get("priority")
        in_target = group == (update.queue or update.expected_queue)
        priority_ok = update.priority is None or update.priority == priority
        if in_target and priority_ok:
            # A move or priority change carries its note in the same PUT, so a ticket already there has it.
            # Only a note-only update has to look for its note among the articles.
            note_only = update.note and update.queue is None and update.priority is None
            if note_only and not await self._has_note(tid, update.note or ""):
                await update.guarded()
                await self._put(tid, {"article": _note(update.note or "")})
                return Applied(tid, ("note",))
            return Applied(tid, ())
        if group != update.expected_queue:
            return Skipped(tid, f"ticket is in group {group!r}, not {update.expected_queue!r}: moved by someone else")
        body: dict[str, Any] = {}
        changed: list[str] = []
        if update.queue is not None and update.queue != group:
            body["group"] = update.queue
            changed.append("queue")
        if update.priority is not None and update.priority != priority:
            body["priority"] = update.priority
            changed.append("priority")
        if update.note:
            body["article"] = _note(update.note)
            changed.append("note")
        await update.guarded()
        await self._put(tid, body)
        return Applied(tid, tuple(changed))

    async def _put(self, tid: str, body: dict[str, Any]) -> None:
        await self._api.request("PUT", f"/tickets/{tid}", body=body, ticket_id=tid)

    async def _has_note(self, tid: str, note: str) -> bool:
        articles = await self._api.get(f"/ticket_articles/by_ticket/{tid}", ticket_id=tid)
        return any(
            isinstance(a, Mapping) and a.get("type") == "note" and str(a.get("body") or "").strip() == note.strip()
            for a in articles or []
        )

    async def _page(self, condition: dict[str, Any], field: str, cursor: str | None, limit: int) -> Page:
        """One page after `cursor`, ordered by (`field`, id); asks for one row more than it returns to know `more`."""
        limit = max(1, limit)
        after = decode_cursor(cursor) if cursor else None
        if after is not None:
            condition = {**condition, f"ticket.{field}": {"operator": "after (absolute)", "value": _since(after[0])}}
        per_page = self._config.per_page
        rows: list[tuple[tuple[datetime, int], Mapping[str, Any]]] = []
        for page in range(1, _MAX_PAGES + 1):
            data = await self._api.request(
                "POST",
                "/tickets/search",
                params={"expand": "true"},
                body={
                    "condition": condition,
                    "page": page,
                    "per_page": per_page,
                    "sort_by": [field, "id"],
                    "order_by": ["asc", "asc"],
                },
            )
            try:
                batch = tickets_from_search(data)
            except ValueError as exc:
                raise TransientError(f"zammad POST /api/v1/tickets/search: {exc}") from None
            for row in batch:
                if not row.get(field):
                    continue
                key = (parse_time(str(row[field])), int(row["id"]))
                if after is None or key > after:
                    rows.append((key, row))
            if len(rows) > limit or len(batch) < per_page:
                break
        rows.sort(key=lambda kv: kv[0])
        chosen = rows[:limit]
        tickets = []
        for _, row in chosen:
            try:
                articles = await self._api.get(f"/ticket_articles/by_ticket/{row['id']}", ticket_id=str(row["id"]))
            except TicketError:
                continue  # deleted between search and read: nothing left to triage
            tickets.append(to_ticket(row, [a for a in articles or [] if isinstance(a, Mapping)]))
        next_cursor = encode_cursor(*chosen[-1][0]) if chosen else cursor
        return Page(tickets=tickets, cursor=next_cursor, more=len(rows) > limit)

    async def _active(self, path: str) -> list[Mapping[str, Any]]:
        rows = await self._api.get(path)
        if not isinstance(rows, list):
            raise TransientError(f"zammad GET /api/v1{path}: expected a list")
        return [r for r in rows if isinstance(r, Mapping) and r.get("active", True)]

    async def _lookup(self, kind: str, names: Sequence[str]) -> list[int]:
        """Ids for configured names, cached; one refresh before an unknown name becomes a ConnectorConfigError."""
        known = self._ids.get(kind)
        if known is None or any(n not in known for n in names):
            path = {"group": "/groups", "state": "/ticket_states"}[kind]
            rows = await self._active(path)
            known = self._ids[kind] = {str(r["name"]): int(r["id"]) for r in rows}
            validate_names(kind, names, [Named(str(i), n) for n, i in known.items()])
        return [known[n] for n in names]

    async def _closed_state_ids(self) -> list[int]:
        """States whose state type is "closed" (not merged or removed), whatever an admin named them."""
        if "closed" not in self._ids:
            rows = await self._api.get("/ticket_states", {"expand": "true"})
            if not isinstance(rows, list):
                raise TransientError("zammad GET /api/v1/ticket_states: expected a list")
            self._ids["closed"] = {
                str(r["name"]): int(r["id"])
                for r in rows
                if isinstance(r, Mapping) and (r.get("state_type") or r.get("name")) == "closed"
            }
        return sorted(self._ids["closed"].values())


def _since(at: datetime) -> str:
    return format_time(at - _SLACK)


def _note(text: str) -> dict[str, Any]:
    return {"body": text, "type": "note", "internal": True, "content_type": "text/plain"}
