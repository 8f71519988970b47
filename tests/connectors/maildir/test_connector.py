"""The Maildir connector beyond the contract: mapping, atomic moves, keywords per folder, cursors, errors."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from connectors.base import Applied, Page, Skipped, Ticket, TicketUpdate
from connectors.errors import ConnectorConfigError, TicketError, TransientError
from connectors.maildir import MaildirConfig, MaildirConnector
from tests.support.backends.maildir import MaildirHarness, read_keywords, unreadable

pytestmark = pytest.mark.anyio

IMAP_FIXTURES = Path(__file__).parents[1] / "imap" / "fixtures"


@pytest.fixture
def h(tmp_path: Path) -> MaildirHarness:
    return MaildirHarness(tmp_path)


def conn(h: MaildirHarness, **overrides: object) -> MaildirConnector:
    return MaildirConnector(h.config(**overrides))


async def drain(fetch: object, cursor: str | None = None, limit: int = 50) -> tuple[list[Ticket], str | None]:
    tickets: list[Ticket] = []
    for _ in range(100):
        page: Page = await fetch(cursor, limit)  # type: ignore[operator]
        tickets.extend(page.tickets)
        cursor = page.cursor
        if not page.more:
            break
    return tickets, cursor


def only_file(folder: Path) -> Path:
    files = [*(folder / "new").iterdir(), *(folder / "cur").iterdir()]
    assert len(files) == 1, files
    return files[0]


async def test_mime_mapping_reuses_the_imap_rules(h: MaildirHarness) -> None:
    for name in ("subject_latin1.eml", "html_only.eml", "importance_low.eml", "broken.eml"):
        h.deliver((IMAP_FIXTURES / name).read_bytes())
    tickets = {t.id: t for t in (await conn(h).fetch_new(None, 50)).tickets}
    assert tickets["<latin1-1@example.org>"].subject == "Bestellung über Straße Nr. 5"
    assert "Straße" in tickets["<latin1-1@example.org>"].body
    assert len(tickets) == 4  # the broken mail too, with what could be read
    assert tickets["<html-1@example.net>"].body == "Bitte überprüfen Sie die Bestellung.\nZeile zwei\nZeile drei"
    assert tickets["<imp-1@example.org>"].priority == "low"  # Importance: low from the sender


async def test_mail_without_message_id_gets_its_file_key(h: MaildirHarness) -> None:
    msg = EmailMessage()
    msg["Subject"] = "No id"
    msg.set_content("Printer jam")
    key = h.deliver(msg)
    c = conn(h)
    (ticket,) = (await c.fetch_new(None, 50)).tickets
    assert ticket.id == f"maildir:{key}"
    outcome = await c.apply(TicketUpdate(ticket.id, expected_queue="INBOX", queue=h.target, priority="low"))
    assert outcome == Applied(ticket.id, ("priority", "queue"))
    assert only_file(h.folder(h.target)).name.startswith(key + ":2,")
    # The key survives the move, so the id still finds the mail.
    assert await c.apply(TicketUpdate(ticket.id, expected_queue="INBOX", queue=h.target, priority="low")) == Applied(
        ticket.id, ()
    )


async def test_apply_renames_the_same_file_and_never_rewrites_it(h: MaildirHarness) -> None:
    tid = h.add_ticket("Invoice", "Charged twice")
    before = only_file(h.root)
    content, inode = before.read_bytes(), before.stat().st_ino
    await conn(h).apply(TicketUpdate(tid, expected_queue="INBOX", queue=h.target, priority="high", note="routed"))
    after = only_file(h.folder(h.target))
    assert after.parent.name == "cur"
    assert (after.stat().st_ino, after.read_bytes()) == (inode, content)
    assert not list((h.folder(h.target) / "tmp").iterdir())
    assert sorted(h.keywords_of(tid)) == ["$Priority_high", "$ticketd"]
    assert not list((h.root / "new").iterdir())


async def test_keywords_are_translated_between_folders(h: MaildirHarness) -> None:
    # The same letters mean different keywords in different folders, as with Dovecot.
    (h.root / "dovecot-keywords").write_text("0 $Forwarded\n1 $Priority_low\n")
    target = h.folder(h.target)
    (target / "dovecot-keywords").write_text("0 Work\n1 Personal\n2 $Forwarded\n")
    tid = h.add_ticket("VPN", "down")
    path = only_file(h.root)
    path.rename(h.root / "cur" / (path.name + ":2,Sab"))  # seen, $Forwarded, $Priority_low
    outcome = await conn(h).apply(TicketUpdate(tid, expected_queue="INBOX", queue=h.target, priority="high"))
    assert outcome == Applied(tid, ("priority", "queue"))
    moved = only_file(target)
    assert moved.name.endswith(":2,Scd")
    assert read_keywords(target) == {0: "Work", 1: "Personal", 2: "$Forwarded", 3: "$Priority_high"}
    assert h.priority_of(tid) == "high"


async def test_priority_only_renames_in_place(h: MaildirHarness) -> None:
    tid = h.add_ticket("Laptop", "broken")
    c = conn(h)
    assert await c.apply(TicketUpdate(tid, expected_queue="INBOX", priority="medium")) == Applied(tid, ("priority",))
    assert h.queue_of(tid) == "INBOX"
    assert h.priority_of(tid) == "medium"
    assert await c.apply(TicketUpdate(tid, expected_queue="INBOX", priority="medium")) == Applied(tid, ())
    assert await c.apply(TicketUpdate(tid, expected_queue="INBOX", priority="low")) == Applied(tid, ("priority",))
    assert h.keywords_of(tid) == ["$Priority_low"]


async def test_non_ascii_queue_folder_is_created_like_dovecot_names_it(tmp_path: Path) -> None:
    h = MaildirHarness(tmp_path)
    tid = h.add_ticket("Frage", "Wann kommt die Lieferung?")
    c = conn(h)
    await c.apply(TicketUpdate(tid, expected_queue="INBOX", queue="Kundenanfragen/Österreich"))
    folder = h.root / ".Queues.Kundenanfragen.&ANY-sterreich"
    assert (folder / "maildirfolder").is_file()
    assert {p.name for p in folder.iterdir()} >= {"cur", "new", "tmp"}
    assert only_file(folder)
    assert "Kundenanfragen/Österreich" in {q.name for q in await c.list_queues()}


async def test_missing_queue_folder_without_create_folders(h: MaildirHarness) -> None:
    tid = h.add_ticket("Frage", "x")
    with pytest.raises(TicketError):
        await conn(h, create_folders=False).apply(TicketUpdate(tid, expected_queue="INBOX", queue="Nowhere"))
    assert h.queue_of(tid) == "INBOX"


async def test_configured_queues_are_listed_before_their_folders_exist(h: MaildirHarness) -> None:
    c = conn(h, queue_folders={"Billing": "Finance/Invoices"})
    assert ("Billing", "Finance/Invoices") in {(q.name, q.id) for q in await c.list_queues()}
    tid = h.add_ticket("Invoice", "wrong")
    await c.apply(TicketUpdate(tid, expected_queue="INBOX", queue="Billing"))
    assert only_file(h.root / ".Finance.Invoices")


async def test_deleted_mail_is_skipped(h: MaildirHarness) -> None:
    tid = h.add_ticket("Gone", "soon")
    only_file(h.root).unlink()
    outcome = await conn(h).apply(TicketUpdate(tid, expected_queue="INBOX", queue=h.target))
    assert isinstance(outcome, Skipped) and "deleted" in outcome.reason


async def test_mail_filed_into_target_by_someone_else_with_other_priority_is_left(h: MaildirHarness) -> None:
    tid = h.add_ticket("Refund", "please")
    h.close(tid, h.target, "low")
    outcome = await conn(h).apply(TicketUpdate(tid, expected_queue="INBOX", queue=h.target, priority="high"))
    assert isinstance(outcome, Skipped)
    assert h.priority_of(tid) == "low"


async def test_same_second_deliveries_with_smaller_keys_are_not_lost(h: MaildirHarness) -> None:
    # Postfix-style names do not sort by time within a second; ordering is by ctime, then key.
    c = conn(h)
    first = h.add_ticket("first", "a")
    _, cursor = await drain(c.fetch_new)
    msg = EmailMessage()
    msg["Message-ID"] = "<late@example.org>"
    msg["Subject"] = "late"
    msg.set_content("b")
    tmp = h.root / "tmp" / "0000000001.V801I2M3.mx"
    tmp.write_bytes(bytes(msg))
    tmp.rename(h.root / "new" / tmp.name)
    tickets, cursor = await drain(c.fetch_new, cursor)
    assert [t.id for t in tickets] == ["<late@example.org>"]
    assert (await c.fetch_new(cursor, 50)).tickets == []
    assert first


def test_cursor_keeps_only_the_last_seconds_of_keys(tmp_path: Path) -> None:
    from connectors.maildir import cursor as cursors
    from connectors.maildir.files import Entry

    second = 1_000_000_000
    entries = [Entry(tmp_path, "new", f"k{i:03}", f"k{i:03}", "", i * second, 0.0) for i in range(300)]
    mark = cursors.Mark()
    delivered: list[str] = []
    while pending := mark.pending(entries):
        taken, rest = pending[:7], pending[7:]
        delivered += [e.key for e in taken]
        mark = mark.advance(taken, rest)
        assert len(mark.seen) <= 7 + cursors.MARGIN_NS // second
    assert delivered == [e.key for e in entries]
    assert mark.watermark == 299 * second - cursors.MARGIN_NS
    assert cursors.decode(cursors.encode({"INBOX": mark}))["INBOX"] == mark


async def test_flag_change_in_the_inbound_delivers_again_with_the_same_id(h: MaildirHarness) -> None:
    tid = h.add_ticket("Read me", "x")
    c = conn(h)
    _, cursor = await drain(c.fetch_new)
    # Simulate the cursor window passing, then Dovecot moving the mail from new/ to cur/ (someone read it).
    from connectors.maildir import cursor as cursors

    marks = cursors.decode(cursor)
    mark = marks["INBOX"]
    marks["INBOX"] = cursors.Mark(max(mark.seen.values()), {})
    path = only_file(h.root)
    path.rename(h.root / "cur" / (path.name + ":2,S"))
    tickets, _ = await drain(c.fetch_new, cursors.encode(marks))
    assert [t.id for t in tickets] == [tid]


async def test_closed_tickets_carry_the_time_they_were_filed(h: MaildirHarness) -> None:
    tid = h.add_ticket("Refund", "Please refund order 1234.")
    h.close(tid, h.other, "low")
    tickets, cursor = await drain(conn(h).fetch_closed)
    (ticket,) = tickets
    assert (ticket.id, ticket.queue, ticket.priority) == (tid, h.other, "low")
    assert ticket.closed_at is not None and ticket.closed_at.tzinfo is not None
    assert (await conn(h).fetch_closed(cursor, 50)).tickets == []


async def test_missing_maildir_is_a_config_error(tmp_path: Path) -> None:
    c = MaildirConnector(MaildirConfig(type="maildir", path=tmp_path / "nope"))
    with pytest.raises(ConnectorConfigError):
        await c.check()
    with pytest.raises(ConnectorConfigError):
        await c.fetch_new(None, 10)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConnectorConfigError):
        await MaildirConnector(MaildirConfig(type="maildir", path=tmp_path / "plain")).check()


async def test_missing_inbound_folder_is_a_config_error(h: MaildirHarness) -> None:
    with pytest.raises(ConnectorConfigError):
        await conn(h, inbound_folder="Tickets").check()
    await conn(h, inbound_folder="Queues/Rückfragen").check()


async def test_unreadable_maildir_is_transient_and_recovers(h: MaildirHarness) -> None:
    h.add_ticket("x", "y")
    c = conn(h)
    with unreadable(h.root):
        with pytest.raises(TransientError):
            await c.check()
        with pytest.raises(TransientError):
            await c.fetch_new(None, 10)
    assert len((await c.fetch_new(None, 10)).tickets) == 1


async def test_foreign_cursor_and_id_are_rejected(h: MaildirHarness) -> None:
    c = conn(h)
    with pytest.raises(ConnectorConfigError):
        await c.fetch_new("imap1:e30=", 10)
    with pytest.raises(TicketError):
        await c.apply(TicketUpdate("uid:1:2:INBOX", expected_queue="INBOX", queue=h.target))
    with pytest.raises(TicketError):
        await c.apply(TicketUpdate("<a@b>", expected_queue="INBOX", priority="critical"))


async def test_a_file_that_is_not_a_mail_is_no_ticket_and_stays_where_it_is(h: MaildirHarness) -> None:
    from structlog.testing import capture_logs

    good = h.add_ticket("Printer", "jams on page two")
    noise = h.deliver(bytes(range(256)) * 4)  # random bytes, no header
    text = h.deliver(b"just a note someone saved here\nsecond line\n")
    with capture_logs() as logs:
        tickets, cursor = await drain(conn(h).fetch_new)
        again, _ = await drain(conn(h).fetch_new, cursor)
    assert [t.id for t in tickets] == [good] and again == []
    warnings = [e for e in logs if "not a mail" in e["event"]]
    assert len(warnings) == 2, logs  # one per file, not one per poll
    assert {Path(e["file"]).name for e in warnings} == {Path(noise).name, Path(text).name}
    inbox = h.folder("INBOX") / "new"
    assert {p.name for p in inbox.iterdir()} >= {Path(noise).name, Path(text).name}  # left where they were
