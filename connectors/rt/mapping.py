"""RT's JSON to ticketd types, TicketSQL and the paging cursors; pure functions, tested on recorded answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors._ids import is_number
from connectors._text import html_to_text, tidy
from connectors.base import Ticket
from connectors.errors import TicketError

# A ticket's id is given when RT inserts it, but another ticket's insert may commit after it (two creates at
# once on PostgreSQL or MySQL): the cursor keeps asking this many ids below its highest one, and drops those
# it has delivered, so a ticket that became visible late is still found.
LOOKBACK_IDS = 200
# The same for resolves: a closed ticket resolved this long before the latest one delivered is looked for again.
LOOKBACK_CLOSED = timedelta(minutes=10)
UNSET = datetime(1970, 1, 1, tzinfo=UTC)  # how RT writes a date that was never set (Resolved of an open ticket)


def parse_time(value: object, *, ticket_id: str | None = None) -> datetime | None:
    """REST 2 dates are UTC (`2026-12-07T21:39:55Z`); RT's epoch placeholder for "never" becomes None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TicketError(f"unreadable timestamp {value!r}", ticket_id=ticket_id) from None
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None if parsed <= UNSET else parsed


def format_time(value: datetime) -> str:
    """The form REST 2 writes, so cursors compare like-for-like."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quote(value: str) -> str:
    """A TicketSQL string literal: single quotes, with quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def any_of(field: str, values: Iterable[str]) -> str:
    """`(Field = 'a' OR Field = 'b')`."""
    return "(" + " OR ".join(f"{field} = {quote(v)}" for v in values) + ")"


def ref_id(value: object) -> str | None:
    """The id of a REST 2 reference (`{"type": "queue", "id": "3", "_url": ...}`) or of a bare value."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def number(value: object, *, ticket_id: str | None = None) -> int:
    """RT's integers arrive as strings in listings and as numbers in single records."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not (is_number(text) or (text.startswith("-") and is_number(text[1:]))):
        raise TicketError(f"not a number: {value!r}", ticket_id=ticket_id)
    return int(text)


@dataclass(frozen=True)
class NewCursor:
    """Opaque to the daemon: the highest ticket id delivered and the delivered ids within LOOKBACK_IDS below it."""

    last: int = 0
    seen: frozenset[int] = frozenset()

    @property
    def floor(self) -> int:
        return max(0, self.last - LOOKBACK_IDS)

    @classmethod
    def decode(cls, cursor: str | None) -> NewCursor:
        if not cursor:
            return cls()
        kind, _, rest = cursor.partition(":")
        last, _, seen = rest.partition(":")
        if kind != "rt-new" or not is_number(last) or not all(is_number(i) for i in seen.split(",") if i):
            raise ValueError(f"not an RT cursor: {cursor!r}")
        return cls(int(last), frozenset(int(i) for i in seen.split(",") if i))

    def encode(self) -> str:
        return f"rt-new:{self.last}:{','.join(map(str, sorted(self.seen)))}"

    def after(self, delivered: Iterable[int]) -> NewCursor:
        """The cursor once `delivered` have been handed out."""
        ids = set(delivered)
        last = max([self.last, *ids])
        keep = frozenset(i for i in self.seen | ids if i > last - LOOKBACK_IDS)
        return NewCursor(last, keep)


@dataclass(frozen=True)
class ClosedCursor:
    """The latest Resolved date delivered and the (id, Resolved) pairs delivered within LOOKBACK_CLOSED before it.

    A resolve, like a create, can commit after a later one: the harvest looks that far back again and drops
    what it delivered. A pair, not an id, so a ticket reopened and resolved again is delivered again.
    """

    last: datetime
    seen: frozenset[tuple[int, int]] = frozenset()  # (ticket id, Resolved as Unix seconds)

    @property
    def floor(self) -> datetime:
        return self.last - LOOKBACK_CLOSED

    def covers(self, ticket_id: int, at: datetime) -> bool:
        """Whether this resolve was delivered already (or lies before the look-back, so it was then)."""
        return at <= self.floor or (ticket_id, int(at.timestamp())) in self.seen

    @classmethod
    def decode(cls, cursor: str | None) -> ClosedCursor | None:
        if not cursor:
            return None
        kind, _, rest = cursor.partition("|")
        at, _, seen = rest.partition("|")
        pairs = [p.partition(".") for p in seen.split(",") if p]
        try:
            when = parse_time(at) if kind == "rt-closed" else None
        except TicketError:
            when = None
        if when is None or not all(is_number(i) and sep and is_number(e) for i, sep, e in pairs):
            raise ValueError(f"not an RT cursor: {cursor!r}")
        return cls(when, frozenset((int(i), int(e)) for i, _, e in pairs))

    def encode(self) -> str:
        return f"rt-closed|{format_time(self.last)}|{','.join(f'{i}.{e}' for i, e in sorted(self.seen))}"

    @classmethod
    def after(cls, before: ClosedCursor | None, delivered: Iterable[tuple[int, datetime]]) -> ClosedCursor | None:
        """The cursor once `delivered` (id, Resolved) have been handed out."""
        pairs = list(delivered)
        if not pairs:
            return before
        last = max([*(at for _, at in pairs), *([before.last] if before else [])])
        keep = {(i, int(at.timestamp())) for i, at in pairs} | (before.seen if before else frozenset())
        bound = int((last - LOOKBACK_CLOSED).timestamp())
        return cls(last, frozenset(p for p in keep if p[1] > bound))


def message_text(attachments: Sequence[Mapping[str, Any]]) -> str | None:
    """A transaction's message as plain text: its text/plain part, else its text/html one; files are ignored.

    None when the transaction carries no message text at all (RT records an empty create that way).
    """
    parts = [a for a in attachments if not str(a.get("Filename") or "")]
    for kind, convert in (("text/plain", tidy), ("text/html", html_to_text)):
        for part in parts:
            if str(part.get("ContentType") or "").lower().split(";")[0].strip() == kind:
                text = convert(str(part.get("Content") or ""))
                if text:
                    return text
    return None


def to_ticket(
    row: Mapping[str, Any],
    *,
    queue: str,
    priority: str | None,
    body: str,
) -> Ticket:
    """One RT ticket (a search row or a full record) with its first message as a ticketd Ticket."""
    tid = str(row.get("id"))
    created = parse_time(row.get("Created"), ticket_id=tid)
    if created is None:
        raise TicketError("no Created date", ticket_id=tid)
    return Ticket(
        id=tid,
        number=tid,
        subject=str(row.get("Subject") or ""),
        body=body,
        created_at=created,
        queue=queue,
        priority=priority,
        closed_at=parse_time(row.get("Resolved"), ticket_id=tid),
    )


def push_ticket_ids(payload: Any) -> tuple[str, ...]:
    """The ticket deploy/rt's scrip names: `{"ticket": "<id>", ...}`."""
    ref = payload.get("ticket") if isinstance(payload, Mapping) else None
    if isinstance(ref, bool) or not isinstance(ref, int | str) or not is_number(str(ref)):
        raise ValueError('the push names no ticket (expected {"ticket": "<id>"}, as deploy/rt\'s scrip sends)')
    return (str(ref),)
