"""Recorded TicketGet answers to `Ticket`: which article is the body, and how it becomes plain text."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.errors import ConnectorConfigError, TicketError
from connectors.znuny.mapping import Cursor, article_text, first_message, to_ticket
from tests.connectors.znuny.conftest import recording

UTC = ZoneInfo("UTC")


def _ticket(prefix: str) -> dict:
    return recording(prefix)["response"]["body_json"]["Ticket"][0]


def test_german_umlauts_and_first_customer_article_not_the_agent_reply() -> None:
    raw = _ticket("303")
    assert [a["SenderType"] for a in raw["Article"]] == ["customer", "agent"]
    t = to_ticket(raw, UTC)
    assert t.subject == "Laptop-Akku hält nur noch 20 Minuten – Größe der Anzeige falsch"
    assert "Jürgen Müller" in t.body and "Musterstraße 1, 50667 Köln" in t.body
    assert "bitte schicken Sie uns das Gerät" not in t.body  # that is the agent's reply
    assert (t.id, t.number, t.queue, t.priority) == ("4", "2026112210000031", "Hardware", "2 low")
    assert t.created_at.isoformat() == "2026-11-22T08:37:46+00:00"
    assert t.closed_at is None


def test_u_escaped_request_stores_the_same_text() -> None:
    sent = recording("105")["request"]
    assert "\\u00fc" in sent["body_text"]
    t = to_ticket(_ticket("315"), UTC)
    assert t.subject == "Rechnung für März fehlt – bitte erneut zusenden"
    assert "die Rechnung für März" in t.body


def test_html_mail_is_plain_text_and_nbsp_is_a_space() -> None:
    t = to_ticket(_ticket("310"), UTC)
    assert "the VPN client crashes right after login." in t.body
    assert "OS: Windows 11" in t.body
    assert '0x80070005 & "access denied"' in t.body
    assert "<" not in t.body.replace("<see screenshot>", "")


def test_article_still_in_html_is_converted() -> None:
    article = {"SenderType": "customer", "ContentType": "text/html; charset=utf8", "MimeType": "text/html"}
    text = article_text({**article, "Body": "<p>Hallo&nbsp;Welt</p><script>x()</script><p>Grüße</p>"})
    assert text == "Hallo Welt\nGrüße"


def test_long_body_is_kept_whole() -> None:
    raw = _ticket("312")
    t = to_ticket(raw, UTC)
    assert t.body.startswith("Kernel panic on db01")
    assert len(t.body) > 19_000
    assert t.body.splitlines()[-1] == raw["Article"][0]["Body"].splitlines()[-1].strip()


def test_attachments_do_not_leak_into_the_body() -> None:
    raw = _ticket("307")
    assert len(raw["Article"][0]["Attachment"]) == 2
    t = to_ticket(raw, UTC)
    assert t.body == "My monitor flickers after about 5 minutes. Photo and diagnostics attached."


def test_attachments_only_article_gives_an_empty_body() -> None:
    raw = dict(_ticket("307"))
    raw["Article"] = [{**raw["Article"][0], "Body": ""}]
    assert to_ticket(raw, UTC).body == ""


def test_installer_article_with_nulls() -> None:
    t = to_ticket(_ticket("703"), UTC)
    assert t.body.startswith("We welcome you to Znuny")
    assert (t.queue, t.priority) == ("Junk", "5 very high")


def test_first_article_when_no_customer_wrote() -> None:
    articles = [{"SenderType": "agent", "Body": "Dear customer"}, {"SenderType": "system", "Body": "x"}]
    assert first_message(articles) == articles[0]
    assert first_message([]) is None


def test_server_time_zone_makes_created_at_aware() -> None:
    t = to_ticket(_ticket("300"), ZoneInfo("Europe/Berlin"))
    assert t.created_at.utcoffset() == timedelta(hours=1)
    assert t.created_at.isoformat() == "2026-11-22T08:37:46+01:00"


def test_closed_from_extended() -> None:
    raw = {**_ticket("300"), "Closed": "2026-11-22 08:38:09"}
    assert to_ticket(raw, UTC).closed_at is not None


def test_unusable_ticket_is_a_ticket_error() -> None:
    with pytest.raises(TicketError):
        to_ticket({"TicketID": 4, "Title": "x", "Queue": "Raw", "TicketNumber": "1", "Created": "yesterday"}, UTC)
    with pytest.raises(TicketError):
        to_ticket({"TicketID": None}, UTC)


def test_cursor_round_trip_and_garbage() -> None:
    c = Cursor("2026-11-22 08:37:46", frozenset({"4", "12"}))
    assert Cursor.decode(c.encode()) == c
    assert Cursor.decode(None) is None
    with pytest.raises(ConnectorConfigError):
        Cursor.decode("not-a-cursor")
    nxt = c.after([("2026-11-22 08:37:46", "13"), ("2026-11-22 08:37:45", "3")])
    assert nxt == Cursor("2026-11-22 08:37:46", frozenset({"4", "12", "13"}))
