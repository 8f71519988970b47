"""Zammad JSON to Ticket against recorded-style responses in fixtures/."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.zammad.mapping import (
    article_text,
    decode_cursor,
    encode_cursor,
    first_customer_article,
    format_time,
    parse_time,
    tickets_from_search,
    to_ticket,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_expanded_ticket_with_html_customer_email() -> None:
    ticket = to_ticket(load("ticket_expanded.json"), load("articles_by_ticket.json"))
    assert (ticket.id, ticket.number) == ("42", "31042")
    assert ticket.subject == "Drucker im 3. Stock druckt nur Streifen"
    assert ticket.queue == "Users" and ticket.priority == "2 normal"
    assert ticket.created_at == datetime(2026, 11, 3, 8, 14, 7, 289000, tzinfo=UTC)
    assert ticket.closed_at is None
    assert "<" not in ticket.body
    assert ticket.body.splitlines() == [
        "Guten Morgen,",
        "",
        "der Drucker HP-3OG druckt seit gestern nur graue Streifen.",
        "Fehlercode: E-41",
        "",
        "Grüße",
        "Jörg Müller",
    ]
    assert "Toner" not in ticket.body  # the agent's internal note is not the customer's message


def test_compact_ticket_from_search_assets_uses_lookup_names() -> None:
    rows = tickets_from_search(load("search_assets.json"))
    assert [r["id"] for r in rows] == [43, 41]  # the order of `tickets`, not of the assets map
    closed = to_ticket(rows[1], [], groups={1: "Users", 2: "Sales"}, priorities={3: "3 high"})
    assert (closed.queue, closed.priority) == ("Sales", "3 high")
    assert closed.closed_at == datetime(2026, 11, 2, 16, 3, 11, 540000, tzinfo=UTC)
    assert closed.body == ""
    assert to_ticket(rows[0], [], groups={1: "Users"}).subject == "VPN bricht ständig ab"


def test_search_plain_array_shape() -> None:
    rows = tickets_from_search([load("ticket_expanded.json")])
    assert rows[0]["group"] == "Users"
    with pytest.raises(ValueError):
        tickets_from_search("<html>proxy error</html>")


def test_first_customer_article_falls_back_to_first_article() -> None:
    agent_only = [
        {
            "id": 2,
            "sender": "Agent",
            "type": "phone",
            "body": "Customer called: mail server down",
            "content_type": "text/plain",
            "created_at": "2026-11-03T08:00:00.000Z",
        },
        {
            "id": 3,
            "sender": "Agent",
            "type": "note",
            "body": "later",
            "content_type": "text/plain",
            "created_at": "2026-11-03T09:00:00.000Z",
        },
    ]
    assert article_text(first_customer_article(agent_only)) == "Customer called: mail server down"
    mixed = [
        *agent_only,
        {
            "id": 4,
            "sender": "Customer",
            "body": "Mein Postfach ist voll, bitte löschen",
            "content_type": "text/plain",
            "created_at": "2026-11-03T10:00:00.000Z",
        },
    ]
    assert article_text(first_customer_article(mixed)) == "Mein Postfach ist voll, bitte löschen"
    assert first_customer_article([]) is None and article_text(None) == ""


def test_plain_text_bodies_are_tidied_not_parsed() -> None:
    article = {"body": "a < b  and   c > d\r\n\r\n\r\nend", "content_type": "text/plain"}
    assert article_text(article) == "a < b and c > d\n\nend"


def test_times_and_cursor_round_trip() -> None:
    at = parse_time("2026-11-03T08:14:07.289Z")
    assert format_time(at) == "2026-11-03T08:14:07.289Z"
    assert parse_time("2026-11-03T08:14:07").tzinfo is UTC
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
    with pytest.raises(ValueError):
        decode_cursor("garbage")
