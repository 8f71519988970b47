"""Znuny JSON to `Ticket`, and the opaque paging cursor (a server-time second plus the ids seen in it)."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors._ids import is_number
from connectors._text import html_to_text, tidy
from connectors.base import Ticket
from connectors.errors import ConnectorConfigError, TicketError

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def parse_time(value: object, zone: ZoneInfo, *, ticket_id: str | None = None) -> datetime:
    """A `YYYY-MM-DD HH:MM:SS` in the server's zone, made aware."""
    if not isinstance(value, str):
        raise TicketError(f"timestamp missing ({value!r})", ticket_id=ticket_id)
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=zone)
    except ValueError:
        raise TicketError(f"unreadable timestamp {value!r}", ticket_id=ticket_id) from None


def shift(value: str, seconds: int) -> str:
    """A server-time string moved by whole seconds (naive on purpose: the server compares strings)."""
    return (datetime.strptime(value, TIME_FORMAT) + timedelta(seconds=seconds)).strftime(TIME_FORMAT)


def first_message(articles: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first customer article: that is what the customer wrote; else the first article at all."""
    listed = list(articles)
    customer = [a for a in listed if a.get("SenderType") == "customer"]
    chosen = customer or listed
    return chosen[0] if chosen else None


def article_text(article: Mapping[str, Any] | None) -> str:
    """Plain text of an article; Znuny usually stores HTML mail as text already, but not always."""
    if article is None:
        return ""
    body = article.get("Body")
    if not isinstance(body, str):
        return ""
    kind = f"{article.get('MimeType') or ''} {article.get('ContentType') or ''}".lower()
    return html_to_text(body) if "text/html" in kind else tidy(body)


def to_ticket(raw: Mapping[str, Any], zone: ZoneInfo, *, article: Mapping[str, Any] | None = None) -> Ticket:
    """One TicketGet object; `Closed` (from Extended=1) becomes `closed_at` when present."""
    ticket_id = str(raw.get("TicketID", ""))
    if not is_number(ticket_id):
        raise TicketError(f"TicketGet returned no usable TicketID ({raw.get('TicketID')!r})")
    for key in ("TicketNumber", "Title", "Queue"):
        if not isinstance(raw.get(key), str):
            raise TicketError(f"TicketGet returned no {key}", ticket_id=ticket_id)
    if article is None:
        articles = raw.get("Article")
        article = first_message(a for a in articles if isinstance(a, dict)) if isinstance(articles, list) else None
    priority = raw.get("Priority")
    closed = raw.get("Closed")
    return Ticket(
        id=ticket_id,
        number=str(raw["TicketNumber"]),
        subject=str(raw["Title"]),
        body=article_text(article),
        created_at=parse_time(raw.get("Created"), zone, ticket_id=ticket_id),
        queue=str(raw["Queue"]),
        priority=priority if isinstance(priority, str) else None,
        closed_at=parse_time(closed, zone, ticket_id=ticket_id) if isinstance(closed, str) else None,
    )


@dataclass(frozen=True)
class Cursor:
    """Everything up to `time` (server zone) was delivered, except the ids in `seen` are all of that second."""

    time: str
    seen: frozenset[str] = frozenset()

    def encode(self) -> str:
        raw = json.dumps({"v": 1, "t": self.time, "ids": sorted(self.seen, key=int)}, separators=(",", ":"))
        return urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        if not value:
            return None
        try:
            data = json.loads(urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            datetime.strptime(data["t"], TIME_FORMAT)
            return cls(str(data["t"]), frozenset(str(i) for i in data["ids"]))
        except (ValueError, KeyError, TypeError):
            raise ConnectorConfigError(f"znuny: not a cursor this connector made: {value[:40]!r}") from None

    def after(self, delivered: Iterable[tuple[str, str]]) -> Cursor:
        """The cursor past `delivered` (time, id) pairs, keeping ids seen in the last second."""
        pairs = list(delivered)
        if not pairs:
            return self
        last = max(time for time, _ in pairs)
        ids = {i for time, i in pairs if time == last}
        if last == self.time:
            ids |= self.seen
        return Cursor(last, frozenset(ids))


START = Cursor("1970-01-01 00:00:00")


def invoker_ticket_ids(payload: Any) -> tuple[str, ...]:
    """The ticket an invoker's request is about: Ticket::Generic sends `{"Event": {"TicketID"}, "Ticket": {...}}`."""
    if isinstance(payload, Mapping):
        for part in (payload.get("Event"), payload.get("Ticket"), payload):
            ref = part.get("TicketID") if isinstance(part, Mapping) else None
            if isinstance(ref, int | str) and not isinstance(ref, bool) and is_number(str(ref)):
                return (str(ref),)
    raise ValueError("the invoker's body has no Event.TicketID (use the Ticket::Generic invoker)")
