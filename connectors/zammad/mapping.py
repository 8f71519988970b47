"""Zammad JSON to ticketd types; pure functions so recorded responses can be tested without a server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors._ids import is_number
from connectors._text import html_to_text, tidy
from connectors.base import Ticket


def parse_time(value: str) -> datetime:
    """Zammad timestamps are ISO 8601 in UTC (`2026-11-02T09:00:00.123Z`); always return an aware datetime."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """The form Zammad itself writes, so conditions compare like-for-like."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def encode_cursor(at: datetime, ticket_id: int) -> str:
    """Opaque to the daemon: the last delivered timestamp plus id, which breaks ties at the same instant."""
    return f"{format_time(at)}|{ticket_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Inverse of `encode_cursor`; a cursor this connector did not write is a caller bug."""
    at, sep, ticket_id = cursor.rpartition("|")
    if not sep:
        raise ValueError(f"not a Zammad cursor: {cursor!r}")
    try:
        return parse_time(at), int(ticket_id)
    except ValueError:
        raise ValueError(f"not a Zammad cursor: {cursor!r}") from None


def first_customer_article(articles: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The customer's opening message; agents' notes or replies only when the customer wrote nothing."""
    ordered = sorted(articles, key=lambda a: (str(a.get("created_at") or ""), int(a.get("id") or 0)))
    for article in ordered:
        if article.get("sender") == "Customer" and not article.get("internal"):
            return article
    return ordered[0] if ordered else None


def article_text(article: Mapping[str, Any] | None) -> str:
    """Plain text of an article body; Zammad stores email bodies as HTML more often than not."""
    if article is None:
        return ""
    body = str(article.get("body") or "")
    if str(article.get("content_type") or "").lower().startswith("text/html"):
        return html_to_text(body)
    return tidy(body)


def name_of(ticket: Mapping[str, Any], field: str, names: Mapping[int, str]) -> str | None:
    """The expanded name (`group`) or, in a compact ticket, the name looked up by `<field>_id`."""
    value = ticket.get(field)
    if isinstance(value, str):
        return value
    ref = ticket.get(f"{field}_id")
    return names.get(int(ref)) if ref is not None else None


def to_ticket(
    ticket: Mapping[str, Any],
    articles: Sequence[Mapping[str, Any]],
    *,
    groups: Mapping[int, str] | None = None,
    priorities: Mapping[int, str] | None = None,
) -> Ticket:
    """One Zammad ticket (expanded or compact) with its articles as a ticketd Ticket."""
    close_at = ticket.get("close_at")
    return Ticket(
        id=str(ticket["id"]),
        number=str(ticket.get("number") or ticket["id"]),
        subject=str(ticket.get("title") or ""),
        body=article_text(first_customer_article(articles)),
        created_at=parse_time(str(ticket["created_at"])),
        queue=name_of(ticket, "group", groups or {}) or "",
        priority=name_of(ticket, "priority", priorities or {}),
        closed_at=parse_time(str(close_at)) if close_at else None,
    )


def tickets_from_search(data: Any) -> list[Mapping[str, Any]]:
    """Search results in either shape: a plain array (`expand=true`) or ids plus `assets.Ticket`."""
    if isinstance(data, list):
        return [t for t in data if isinstance(t, Mapping)]
    if isinstance(data, Mapping):
        assets = data.get("assets") or {}
        by_id = assets.get("Ticket") or {} if isinstance(assets, Mapping) else {}
        return [by_id[str(i)] for i in data.get("tickets") or [] if str(i) in by_id]
    raise ValueError("search response is neither a list nor an object")


def webhook_ticket_ids(payload: Any) -> tuple[str, ...]:
    """The ticket a trigger's webhook is about: Zammad's default payload is `{"ticket": {...}, "article": {...}}`."""
    ticket = payload.get("ticket") if isinstance(payload, Mapping) else None
    ref = ticket.get("id") if isinstance(ticket, Mapping) else None
    if isinstance(ref, bool) or not isinstance(ref, int | str) or not is_number(str(ref)):
        raise ValueError("the webhook payload has no ticket.id (use the trigger's default payload)")
    return (str(ref),)
