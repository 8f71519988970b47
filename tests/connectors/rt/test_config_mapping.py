"""The RT connector's config, cursors, TicketSQL quoting, message text and push verification: no server needed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from connectors.errors import PushRejected, TicketError
from connectors.registry import connector_class, parse_config
from connectors.rt import RTConfig, RTConnector
from connectors.rt.mapping import (
    LOOKBACK_CLOSED,
    LOOKBACK_IDS,
    ClosedCursor,
    NewCursor,
    any_of,
    message_text,
    parse_time,
    push_ticket_ids,
    quote,
)

BASE = {"type": "rt", "url": "https://rt.example.org/REST/2.0/", "inbound_queues": ["General"]}


def test_registered_with_defaults_and_the_rest_suffix_dropped() -> None:
    assert connector_class("rt") is RTConnector
    cfg = parse_config({**BASE, "token": "1-2-abc"})
    assert isinstance(cfg, RTConfig)
    assert cfg.url == "https://rt.example.org"
    assert (cfg.new_statuses, cfg.closed_statuses, cfg.note_subject) == (["new"], ["resolved"], "ticketd")
    assert cfg.priorities == {"Low": 0, "Medium": 50, "High": 100}
    assert cfg.ticket_url("42") == "https://rt.example.org/Ticket/Display.html?id=42"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "give 'token', or both 'user' and 'password'"),
        ({"token": "t", "user": "u", "password": "p"}, "not both"),
        ({"user": "u"}, "give 'token', or both 'user' and 'password'"),
        ({"token": "t", "priorities": {"Low": 0, "Lowest": 0}}, "'Low' and 'Lowest' both map to 0"),
        ({"token": "t", "url": "ftp://rt"}, "url must start with http"),
        ({"token": "t", "url": "https://me:pw@rt"}, "must not carry credentials"),
        ({"token": "t", "inbound_queues": [" "]}, "names must not be blank"),
        ({"token": "t", "colour": "blue"}, "colour"),
    ],
)
def test_bad_config_is_refused_naming_the_key(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RTConfig.model_validate({**BASE, **extra})


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("1-27-secret\n")
    cfg = RTConfig.model_validate({**BASE, "token_file": str(tmp_path / "token")})
    assert cfg.token is not None and cfg.token.get_secret_value() == "1-27-secret"
    assert "1-27-secret" not in repr(cfg)


@pytest.mark.parametrize(("number", "name"), [(0, "Low"), (49, "Low"), (50, "Medium"), (80, "Medium"), (100, "High")])
def test_a_priority_number_reads_as_the_name_whose_range_holds_it(number: int, name: str) -> None:
    assert RTConfig.model_validate({**BASE, "token": "t"}).priority_name(number) == name


def test_below_every_range_is_the_lowest_name() -> None:
    cfg = RTConfig.model_validate({**BASE, "token": "t", "priorities": {"Normal": 10, "Urgent": 90}})
    assert cfg.priority_name(3) == "Normal"


def test_the_new_cursor_keeps_delivered_ids_within_the_look_back_only() -> None:
    start = NewCursor.decode(None)
    assert (start.last, start.floor, start.seen) == (0, 0, frozenset())
    first = start.after([5, 3, 9])
    assert (first.last, first.seen) == (9, frozenset({3, 5, 9}))
    assert NewCursor.decode(first.encode()) == first
    far = first.after([9 + LOOKBACK_IDS + 4])
    assert far.floor == 13 and far.seen == frozenset({9 + LOOKBACK_IDS + 4})  # 3, 5 and 9 fell out of the window
    late = far.after([200])  # a ticket that committed late, below the highest id: remembered, last unchanged
    assert late.last == far.last and 200 in late.seen


@pytest.mark.parametrize(
    "bad", ["rt-new:x:", "rt-new:5:1,a", "other:5:", "rt-closed|x|1", "rt-closed|2026-01-01T00:00:00Z|z"]
)
def test_a_foreign_cursor_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an RT cursor"):
        (ClosedCursor if bad.startswith("rt-closed") else NewCursor).decode(bad)


def test_the_closed_cursor_remembers_resolves_within_its_look_back() -> None:
    at = datetime(2026, 12, 7, 21, 39, 55, tzinfo=UTC)
    first = ClosedCursor.after(None, [(17, at), (9, at - timedelta(minutes=3))])
    assert first is not None and first.last == at
    assert ClosedCursor.decode(first.encode()) == first
    assert first.encode() == f"rt-closed|2026-12-07T21:39:55Z|9.{int(at.timestamp()) - 180},17.{int(at.timestamp())}"
    assert first.covers(17, at) and first.covers(9, at - timedelta(minutes=3))
    assert not first.covers(4, at)  # the same second, a lower id that committed late: still to deliver
    assert not first.covers(17, at + timedelta(days=2))  # reopened and resolved again: delivered again
    assert first.covers(5, at - LOOKBACK_CLOSED)  # before the look-back: delivered back then
    later = ClosedCursor.after(first, [(30, at + LOOKBACK_CLOSED)])
    assert later is not None and later.seen == {(30, int((at + LOOKBACK_CLOSED).timestamp()))}
    assert ClosedCursor.after(first, []) is first


def test_dates_are_utc_and_rts_epoch_means_never() -> None:
    assert parse_time("2026-12-07T21:39:55Z") == datetime(2026, 12, 7, 21, 39, 55, tzinfo=UTC)
    assert parse_time("1970-01-01T00:00:00Z") is None
    assert parse_time("") is None and parse_time(None) is None
    with pytest.raises(TicketError, match="ticket 7: unreadable timestamp"):
        parse_time("yesterday", ticket_id="7")


def test_ticketsql_literals_are_escaped() -> None:
    assert quote("O'Brien \\ Co") == "'O\\'Brien \\\\ Co'"
    assert any_of("Queue", ["Raw", "Sales EU"]) == "(Queue = 'Raw' OR Queue = 'Sales EU')"


def test_the_message_is_the_plain_part_else_the_html_one_and_never_a_file() -> None:
    plain = {"ContentType": "text/plain", "Content": "  The printer\n\n\n shows error 41. ", "Filename": ""}
    html = {"ContentType": "text/html", "Content": "<p>Hello <b>world</b></p><p>second</p>", "Filename": ""}
    file = {"ContentType": "text/plain", "Content": "log file contents", "Filename": "debug.log"}
    container = {"ContentType": "multipart/mixed", "Content": "", "Filename": ""}
    assert message_text([container, file, html, plain]) == "The printer\n\nshows error 41."
    assert message_text([container, html, file]) == "Hello world\nsecond"
    assert message_text([container, file]) is None
    assert message_text([]) is None


def test_the_push_names_one_numeric_ticket() -> None:
    assert push_ticket_ids({"ticket": "42", "queue": "Raw"}) == ("42",)
    assert push_ticket_ids({"ticket": 42}) == ("42",)
    for bad in ({}, {"ticket": "4 2"}, {"ticket": True}, {"ticket": "٤٢"}, ["42"]):
        with pytest.raises(ValueError, match="names no ticket"):
            push_ticket_ids(bad)


@pytest.mark.anyio
async def test_a_push_is_accepted_only_with_the_right_signature() -> None:
    secret = "push-secret-0123456789abcdef"
    cfg = RTConfig.model_validate({**BASE, "token": "t", "push_secret": secret})
    async with httpx.AsyncClient() as client:
        conn = RTConnector(cfg, client)
        body = b'{"ticket":"7","queue":"Raw"}'
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        push = conn.read_push({"x-ticketd-signature": signature, "x-ticketd-delivery": "rt-99"}, body)
        assert (push.ticket_ids, push.delivery) == (("7",), "rt-99")
        for headers in ({}, {"x-ticketd-signature": signature.replace("sha256=", "sha1=")}):
            with pytest.raises(PushRejected):
                conn.read_push(headers, body)
        with pytest.raises(PushRejected):
            conn.read_push({"x-ticketd-signature": signature}, body.replace(b"7", b"8"))
        unsigned = RTConnector(RTConfig.model_validate({**BASE, "token": "t"}), client)
        assert not unsigned.accepts_push() and conn.accepts_push()
        with pytest.raises(PushRejected, match="no push_secret"):
            unsigned.read_push({"x-ticketd-signature": signature}, body)
