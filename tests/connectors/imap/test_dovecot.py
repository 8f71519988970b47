"""The IMAP connector against a real Dovecot: server quirks, resync, moves, keywords, folder names."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.base import Applied, Page, Skipped, Ticket, TicketUpdate
from connectors.errors import AuthError, ConnectorConfigError, TicketError, TransientError
from connectors.imap import ImapConnector
from tests.support.backends.imap import ImapHarness
from tests.support.fakes.dovecot import connected

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).with_name("fixtures")


async def drain(fetch: object, cursor: str | None = None, limit: int = 50) -> tuple[list[Ticket], str | None]:
    """Every page from `cursor` on; returns the tickets and the last cursor."""
    tickets: list[Ticket] = []
    for _ in range(100):
        page: Page = await fetch(cursor, limit)  # type: ignore[operator]
        tickets.extend(page.tickets)
        cursor = page.cursor
        if not page.more:
            break
    return tickets, cursor


def simple(subject: str, message_id: str | None = None, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "kunde@example.org"
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"body of {subject}")
    return msg


def flags_in(h: ImapHarness, folder: str) -> list[tuple[bytes, ...]]:
    with connected(h.server, h.user) as c:
        c.select_folder(folder, readonly=True)
        uids = c.search("ALL")
        return [v[b"FLAGS"] for v in c.fetch(uids, ["FLAGS"]).values()]


async def test_fetching_never_sets_seen(h: ImapHarness) -> None:
    tid = h.add_ticket("Unread", "must stay unread")
    h.append(simple("Filed", "<filed-1@x>"), folder=h.folder(h.target))
    conn = await h.connector()
    new, _ = await drain(conn.fetch_new)
    closed, _ = await drain(conn.fetch_closed)
    assert [t.id for t in new] == [tid] and [t.id for t in closed] == ["<filed-1@x>"]
    for folder in ("INBOX", h.folder(h.target)):
        assert all(b"\\Seen" not in f for f in flags_in(h, folder))


async def test_uid_range_quirk_is_filtered(h: ImapHarness) -> None:
    h.add_ticket("only one", "x")
    with connected(h.server, h.user) as c:
        c.select_folder("INBOX", readonly=True)
        (highest,) = c.search("ALL")
        # The server quirk itself: a range starting above the highest UID still matches it.
        assert c.search(["UID", f"{highest + 5}:*"]) == [highest]
    conn = await h.connector()
    page = await conn.fetch_new(None, 10)
    again = await conn.fetch_new(page.cursor, 10)
    assert len(page.tickets) == 1 and again.tickets == [] and not again.more


async def test_uidvalidity_change_redelivers_with_the_same_ids(h: ImapHarness) -> None:
    """Documented behaviour: start that folder over; mail still there comes again with unchanged ids."""
    folder = "Queues/Eingang"
    with connected(h.server, h.user) as c:
        c.create_folder(folder)
    first = [simple(f"m{i}", f"<resync-{i}@x>") for i in range(3)]
    for msg in first:
        h.append(msg, folder=folder)
    conn = ImapConnector(h.config(inbound_folder=folder))
    before, cursor = await drain(conn.fetch_new, limit=2)
    assert [t.id for t in before] == ["<resync-0@x>", "<resync-1@x>", "<resync-2@x>"]

    with connected(h.server, h.user) as c:
        old = c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]
        c.delete_folder(folder)
        c.create_folder(folder)
        assert c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"] != old
    for msg in [*first[1:], simple("new", "<resync-new@x>")]:  # one mail gone, one arrived
        h.append(msg, folder=folder)

    with capture_logs() as logs:
        after, cursor = await drain(conn.fetch_new, cursor, limit=2)
    assert [t.id for t in after] == ["<resync-1@x>", "<resync-2@x>", "<resync-new@x>"]
    resync = [e for e in logs if "UIDVALIDITY" in e["event"]]
    assert len(resync) == 1 and resync[0]["log_level"] == "warning"
    assert resync[0]["folder"] == folder and resync[0]["old_uidvalidity"] == int(old)
    assert (await conn.fetch_new(cursor, 10)).tickets == []  # and then settles


async def test_uidvalidity_change_in_a_queue_folder_resyncs_that_folder_only(h: ImapHarness) -> None:
    target, other = h.folder(h.target), h.folder(h.other)
    h.append(simple("a", "<a@x>"), folder=target, flags=("$Priority_low",))
    h.append(simple("b", "<b@x>"), folder=other)
    conn = await h.connector()
    closed, cursor = await drain(conn.fetch_closed)
    assert {(t.id, t.queue, t.priority) for t in closed} == {("<a@x>", h.target, "low"), ("<b@x>", h.other, None)}
    with connected(h.server, h.user) as c:
        c.delete_folder(other)
        c.create_folder(other)
    h.append(simple("b", "<b@x>"), folder=other)
    h.append(simple("c", "<c@x>"), folder=target)
    again, _ = await drain(conn.fetch_closed, cursor)
    assert sorted(t.id for t in again) == ["<b@x>", "<c@x>"]


@pytest.mark.parametrize("use_move", ["auto", "never"])
async def test_move_and_copy_expunge_fallback(h: ImapHarness, use_move: str) -> None:
    keep = h.add_ticket("stays", "someone else's mail")
    tid = h.add_ticket("goes", "to the target")
    with connected(h.server, h.user) as c:  # a person flagged another mail \Deleted: not ours to expunge
        c.select_folder("INBOX")
        c.add_flags(c.search(["HEADER", "Message-ID", keep.strip("<>")]), ["\\Deleted"])
    conn = ImapConnector(h.config(use_move=use_move))
    outcome = await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, queue=h.target))
    assert outcome == Applied(tid, ("queue",))
    assert h.queue_of(tid) == h.target
    inbox = flags_in(h, "INBOX")
    assert len(inbox) == 1 and b"\\Deleted" in inbox[0]  # only the person's mail is left, still there
    assert await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, queue=h.target)) == Applied(tid, ())


async def test_priority_keyword_replaces_the_old_one_and_note_marks_the_mail(h: ImapHarness) -> None:
    tid = h.add_ticket("prio", "x")
    with connected(h.server, h.user) as c:
        c.select_folder("INBOX")
        c.add_flags(c.search("ALL"), ["$Priority_low", "\\Flagged"])
    conn = await h.connector()
    update = TicketUpdate(tid, expected_queue=h.inbound, priority="high", note="ticketd: routed")
    assert await conn.apply(update) == Applied(tid, ("priority", "note"))
    (flags,) = flags_in(h, "INBOX")
    assert set(flags) == {b"$Priority_high", b"$ticketd", b"\\Flagged"}
    assert h.queue_of(tid) == h.inbound
    writes = h.writes(tid)
    assert await conn.apply(update) == Applied(tid, ())
    assert h.writes(tid) == writes


async def test_non_ascii_folder_names(h: ImapHarness) -> None:
    conn = await h.connector()
    queues = {q.name: q.id for q in await conn.list_queues()}
    assert queues == {
        "INBOX": "INBOX",
        "Allgemein": "Queues/Allgemein",
        "Bestellungen-Übersicht": "Queues/Bestellungen-Übersicht",
        "Rückfragen": "Queues/Rückfragen",
    }
    with connected(h.server, h.user) as c:
        c.folder_encode = False
        raw = {name for _, _, name in c.list_folders()}
    assert b"Queues/R&APw-ckfragen" in raw  # modified UTF-7 on the wire
    tid = h.add_ticket("Umlaute", "ä")
    assert await conn.apply(TicketUpdate(tid, expected_queue="INBOX", queue="Rückfragen")) == Applied(tid, ("queue",))
    assert h.queue_of(tid) == "Rückfragen"


async def test_queue_folders_mapping_names_queues(h: ImapHarness) -> None:
    conn = ImapConnector(h.config(queue_folders={"Eingang": "INBOX", "Sales": "Queues/Allgemein"}))
    assert [q.name for q in await conn.list_queues()] == ["Eingang", "Bestellungen-Übersicht", "Rückfragen", "Sales"]
    tid = h.add_ticket("mapped", "x")
    page = await conn.fetch_new(None, 10)
    assert page.tickets[0].queue == "Eingang"
    assert await conn.apply(TicketUpdate(tid, expected_queue="Eingang", queue="Sales")) == Applied(tid, ("queue",))
    assert h.queue_of(tid) == "Allgemein"


async def test_mail_already_in_target_without_our_keywords_is_left_alone(h: ImapHarness) -> None:
    tid = h.add_ticket("filed by a person", "x")
    h.human_move(tid, h.target)
    conn = await h.connector()
    outcome = await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, queue=h.target, priority="high"))
    assert isinstance(outcome, Skipped) and "someone else" in outcome.reason
    assert h.priority_of(tid) is None


async def test_deleted_mail_is_skipped_not_an_error(h: ImapHarness) -> None:
    tid = h.add_ticket("gone", "x")
    with connected(h.server, h.user) as c:
        c.select_folder("INBOX")
        c.delete_messages(c.search("ALL"))
        c.expunge()
    conn = await h.connector()
    outcome = await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, queue=h.target))
    assert isinstance(outcome, Skipped) and "not found" in outcome.reason


async def test_bad_mail_does_not_block_the_mailbox(h: ImapHarness) -> None:
    h.append((FIXTURES / "broken.eml").read_bytes())
    good = h.add_ticket("good", "fine")
    conn = await h.connector()
    tickets, _ = await drain(conn.fetch_new)
    assert len(tickets) == 2 and tickets[1].id == good
    broken = tickets[0]
    assert broken.id.startswith("uid:") and broken.subject == "Kaputt üä"
    assert broken.created_at.tzinfo is not None  # INTERNALDATE when the Date header is unreadable
    # Without a Message-ID the positional id works while the mail stays where it is.
    update = TicketUpdate(broken.id, expected_queue=h.inbound, queue=h.other)
    assert await conn.apply(update) == Applied(broken.id, ("queue",))
    assert isinstance(await conn.apply(update), Skipped)


async def test_same_message_id_twice_is_one_ticket_and_moves_together(h: ImapHarness) -> None:
    for _ in range(2):
        h.append(simple("twice", "<dup@x>"))
    conn = await h.connector()
    page = await conn.fetch_new(None, 10)
    assert [t.id for t in page.tickets] == ["<dup@x>"]
    assert await conn.apply(TicketUpdate("<dup@x>", expected_queue=h.inbound, queue=h.target)) == Applied(
        "<dup@x>", ("queue",)
    )
    assert flags_in(h, "INBOX") == [] and len(flags_in(h, h.folder(h.target))) == 2


async def test_closed_priority_falls_back_to_sender_headers(h: ImapHarness) -> None:
    h.append((FIXTURES / "attachment_only.eml").read_bytes(), folder=h.folder(h.other))
    h.append((FIXTURES / "importance_low.eml").read_bytes(), folder=h.folder(h.other), flags=("$Priority_medium",))
    conn = await h.connector()
    closed, _ = await drain(conn.fetch_closed)
    assert {t.id: t.priority for t in closed} == {"<att-1@example.org>": "high", "<imp-1@example.org>": "medium"}
    assert all(t.closed_at is None and t.queue == h.other for t in closed)


async def test_errors_are_classified(h: ImapHarness) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(TransientError):
        await ImapConnector(h.config(port=closed_port)).check()
    with pytest.raises(ConnectorConfigError):
        await ImapConnector(h.config(inbound_folder="Nope")).fetch_new(None, 1)
    conn = await h.connector()
    with pytest.raises(ConnectorConfigError):
        await conn.fetch_new("not-a-cursor", 1)
    tid = h.add_ticket("x", "y")
    with pytest.raises(TicketError):
        await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, queue="No such queue"))
    with pytest.raises(TicketError):
        await conn.apply(TicketUpdate(tid, expected_queue=h.inbound, priority="critical"))
    h.fail_next(3)
    for _ in range(3):
        with pytest.raises(TransientError):
            await conn.list_queues()
    await conn.check()


async def test_a_connection_lost_during_login_is_transient_and_a_wrong_password_is_not(h: ImapHarness) -> None:
    """imapclient reports both as LoginError; only the server's own refusal may stop the connector."""
    conn = await h.connector()
    h.proxy.cut_at(b" LOGIN ")  # Dovecot greeted; the LOGIN never reaches it
    with pytest.raises(TransientError, match="connection lost during login"):
        await conn.check()
    await conn.check()
    with pytest.raises(AuthError, match="rejected"):
        await ImapConnector(h.config(bad_auth=True)).check()


async def test_a_server_that_never_greets_times_out_as_transient(h: ImapHarness) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (via the backlog), never speaks
        conn = ImapConnector(h.config(port=silent.getsockname()[1], timeout=0.5))
        with pytest.raises(TransientError, match="timed out"):
            await conn.check()
