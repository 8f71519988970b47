"""The RT connector on the fake RT, in what a real RT cannot be made to do on demand: fail, commit late, sit in
another time zone, refuse a field, forbid a ticket. The fake's fidelity is test_fake_replay.py's business."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from connectors.base import Applied, Connector, TicketUpdate
from connectors.errors import AuthError, ConnectorConfigError, TicketError, TransientError
from tests.support.backends.rt import FakeRTHarness
from tests.support.fakes.rt import AGENT, START, FakeRT

pytestmark = pytest.mark.anyio

UTC_PLUS_14 = "Pacific/Kiritimati"
UTC_MINUS_12 = "Etc/GMT+12"  # POSIX signs: twelve hours behind UTC


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness() -> AsyncIterator[FakeRTHarness]:
    h = FakeRTHarness(FakeRT())
    try:
        yield h
    finally:
        await h.aclose()


async def _all_new(conn: Connector, cursor: str | None, limit: int = 2) -> tuple[list[str], str | None]:
    """fetch_new until it says there is no more: the ids in delivery order, and the last cursor."""
    ids: list[str] = []
    for _ in range(50):
        page = await conn.fetch_new(cursor, limit)
        ids += [t.id for t in page.tickets]
        cursor = page.cursor
        if not page.more:
            return ids, cursor
    raise AssertionError("fetch_new never ran out")


async def _all_closed(conn: Connector, cursor: str | None, limit: int = 2) -> tuple[list[str], str | None]:
    ids: list[str] = []
    for _ in range(50):
        page = await conn.fetch_closed(cursor, limit)
        ids += [t.id for t in page.tickets]
        cursor = page.cursor
        if not page.more:
            return ids, cursor
    raise AssertionError("fetch_closed never ran out")


# -- failures of the server or the way to it ------------------------------------------------------------------


async def test_503_with_retry_after_is_transient_with_the_hint(harness: FakeRTHarness) -> None:
    conn = await harness.connector()
    harness.fake.fail_next(1, retry_after="7")
    with pytest.raises(TransientError) as caught:
        await conn.fetch_new(None, 10)
    assert caught.value.retry_after == 7.0
    assert "503" in str(caught.value)
    await conn.fetch_new(None, 10)  # the next call goes through


async def test_dropped_connection_is_transient(harness: FakeRTHarness) -> None:
    harness.add_ticket("Printer offline", "error 41")
    conn = await harness.connector()
    harness.fake.fail_next(1, kind="drop")
    with pytest.raises(TransientError, match="failed"):
        await conn.fetch_new(None, 10)
    assert [t.subject for t in (await conn.fetch_new(None, 10)).tickets] == ["Printer offline"]


async def test_failure_in_the_middle_of_a_poll_is_transient(harness: FakeRTHarness) -> None:
    """The search answers, the ticket's history read fails: the poll fails as a whole and is redone in full."""
    harness.add_ticket("VPN down", "Nobody can connect.")
    conn = await harness.connector()
    await conn.list_queues()
    harness.fake.fail_next(1, path=r"/history$")
    with pytest.raises(TransientError):
        await conn.fetch_new(None, 10)
    assert [t.body for t in (await conn.fetch_new(None, 10)).tickets] == ["Nobody can connect."]


# -- credentials and rights -----------------------------------------------------------------------------------


async def test_wrong_token_is_an_auth_error(harness: FakeRTHarness) -> None:
    conn = await harness.connector(bad_auth=True)
    with pytest.raises(AuthError, match="Unauthorized"):
        await conn.check()
    with pytest.raises(AuthError):
        await conn.fetch_closed(None, 10)


async def test_wrong_password_is_an_auth_error() -> None:
    h = FakeRTHarness(FakeRT(), token=False)
    try:
        said = await (await h.connector()).check()
        assert said is not None and "REST 2 as user 'ticketd'" in said
        with pytest.raises(AuthError):
            await (await h.connector(bad_auth=True)).fetch_new(None, 10)
    finally:
        await h.aclose()


async def test_refused_queue_is_a_ticket_error_naming_the_ticket(harness: FakeRTHarness) -> None:
    """RT answers 200 ["Ticket N: Permission Denied"] for a queue without CreateTicket; the read-back tells."""
    tid = harness.add_ticket("Old invoice", "from 2019")
    conn = await harness.connector()
    with pytest.raises(TicketError, match="Permission Denied") as caught:
        await conn.apply(TicketUpdate(tid, expected_queue="Raw", queue="Archive", priority="High"))
    assert caught.value.ticket_id == tid
    assert "queue 'Archive' (still 'Raw')" in str(caught.value)
    # RT applied the other field of the same PUT.
    assert harness.fake.queue_of(int(tid)) == "Raw" and harness.fake.priority_of(int(tid)) == 100


async def test_unknown_queue_is_a_ticket_error(harness: FakeRTHarness) -> None:
    tid = harness.add_ticket("Lost", "where to?")
    conn = await harness.connector()
    with pytest.raises(TicketError, match="Queue Nope does not exist") as caught:
        await conn.apply(TicketUpdate(tid, expected_queue="Raw", queue="Nope"))
    assert caught.value.ticket_id == tid


async def test_ticket_the_agent_may_not_see_is_a_ticket_error(harness: FakeRTHarness) -> None:
    tid = harness.add_ticket("Secret", "for root only")
    harness.fake.revoke(AGENT, "ShowTicket")
    conn = await harness.connector()
    with pytest.raises(TicketError, match="403") as caught:
        await conn.apply(TicketUpdate(tid, expected_queue="Raw", queue="Billing"))
    assert caught.value.ticket_id == tid
    assert await conn.fetch_ticket(tid) is None


async def test_ticket_the_agent_may_not_change_is_a_ticket_error(harness: FakeRTHarness) -> None:
    tid = harness.add_ticket("Read only", "look, don't touch")
    harness.fake.revoke(AGENT, "ModifyTicket")
    conn = await harness.connector()
    with pytest.raises(TicketError, match=r"HTTP 403: Forbidden") as caught:
        await conn.apply(TicketUpdate(tid, expected_queue="Raw", queue="Billing"))
    assert caught.value.ticket_id == tid
    assert harness.fake.writes(int(tid)) == 0


async def test_check_names_missing_rights(harness: FakeRTHarness) -> None:
    harness.add_ticket("Probe", "a ticket for check to look at")
    harness.fake.revoke(AGENT, "CommentOnTicket")
    harness.fake.revoke(AGENT, "CreateTicket", queue="Misc")
    conn = await harness.connector()
    with pytest.raises(ConnectorConfigError, match="CreateTicket on queue\\(s\\) 'Misc'"):
        await conn.check()
    harness.fake.grant(AGENT, "CreateTicket", queue="Misc")
    with pytest.raises(ConnectorConfigError, match="lacks CommentOnTicket on queue 'Raw'"):
        await conn.check()


# -- new tickets: a late commit --------------------------------------------------------------------------------


async def test_ticket_committed_late_with_a_lower_id_is_delivered_once(harness: FakeRTHarness) -> None:
    """Ticket 2's insert commits after ticket 3's (two creates at once): the poll that delivers 3 cannot see 2."""
    fake = harness.fake
    first = harness.add_ticket("First", "one")
    late = str(fake.create_ticket("Late", "two", hidden=True))
    third = harness.add_ticket("Third", "three")
    conn = await harness.connector()
    ids, cursor = await _all_new(conn, None)
    assert ids == [first, third]
    fake.reveal(int(late))
    again, cursor = await _all_new(conn, cursor)
    assert again == [late]
    fourth = harness.add_ticket("Fourth", "four")
    rest, _ = await _all_new(conn, cursor)
    assert rest == [fourth]


async def test_pushed_ticket_not_committed_yet_is_none(harness: FakeRTHarness) -> None:
    tid = harness.fake.create_ticket("Pushed early", "not committed", hidden=True)
    conn = await harness.connector()
    assert await conn.fetch_ticket(str(tid)) is None
    harness.fake.reveal(tid)
    ticket = await conn.fetch_ticket(str(tid))
    assert ticket is not None and ticket.body == "not committed"


# -- closed tickets: the agent's time zone ---------------------------------------------------------------------


@pytest.mark.parametrize("zone", [UTC_PLUS_14, UTC_MINUS_12, "US/Eastern", "UTC"])
async def test_closed_harvest_delivers_each_once_in_any_zone(zone: str) -> None:
    """TicketSQL reads `Resolved > '…'` in the agent's zone: the connector's 14 hours of slack must cover the
    widest offsets, and paging (2 per page, 2 per call) must neither skip nor repeat tickets tied on Resolved."""
    fake = FakeRT(timezone=zone)
    h = FakeRTHarness(fake)
    try:
        conn = await h.connector(per_page=2)
        ids = [int(h.add_ticket(f"Ticket {i}", f"body {i}")) for i in range(12)]
        t0 = START + timedelta(hours=1)

        def resolve(tid: int, at: timedelta) -> None:
            fake.set_time(t0 + at)
            fake.close(tid, queue="Billing", priority=100)

        for tid in ids[:3]:
            resolve(tid, timedelta(0))  # three in the same second
        resolve(ids[7], timedelta(seconds=1))  # a higher id resolved before lower ones
        resolve(ids[3], timedelta(seconds=1))
        for tid in ids[4:6]:
            resolve(tid, timedelta(minutes=1))
        resolve(ids[6], timedelta(hours=2))
        first, cursor = await _all_closed(conn, None)
        assert Counter(first) == Counter(str(i) for i in ids[:8])
        assert first[:3] == [str(i) for i in ids[:3]]  # by Resolved, then id
        # Later: one at the very second of the cursor (a higher id), others hours later.
        resolve(ids[8], timedelta(hours=2))
        resolve(ids[9], timedelta(hours=20))
        resolve(ids[10], timedelta(hours=20))
        second, cursor = await _all_closed(conn, cursor)
        assert second == [str(i) for i in ids[8:11]]
        third, _ = await _all_closed(conn, cursor)
        assert third == []
    finally:
        await h.aclose()


async def test_ticket_resolved_in_the_cursors_second_with_a_lower_id_is_delivered(harness: FakeRTHarness) -> None:
    fake = harness.fake
    low, high = harness.add_ticket("Low id", "a"), harness.add_ticket("High id", "b")
    conn = await harness.connector()
    fake.close(int(high), queue="Billing", priority=100)
    ids, cursor = await _all_closed(conn, None)
    assert ids == [high]
    fake.close(int(low), queue="Billing", priority=100)  # the same second: the fake's clock stands still
    again, _ = await _all_closed(conn, cursor)
    assert again == [low]


async def test_resolve_committed_late_is_delivered(harness: FakeRTHarness) -> None:
    fake = harness.fake
    early, later = harness.add_ticket("Resolved first", "a"), harness.add_ticket("Resolved second", "b")
    conn = await harness.connector()
    fake.close(int(early), queue="Billing", priority=100)
    fake.hide(int(early))  # its transaction has not committed yet
    fake.tick(2)
    fake.close(int(later), queue="Misc", priority=50)
    ids, cursor = await _all_closed(conn, None)
    assert ids == [later]
    fake.reveal(int(early))
    again, _ = await _all_closed(conn, cursor)
    assert again == [early]


# -- notes: RT's history pages ---------------------------------------------------------------------------------


async def test_note_beyond_the_first_history_page_is_not_written_twice(harness: FakeRTHarness) -> None:
    fake = harness.fake
    tid = harness.add_ticket("Long story", "a ticket humans worked on a lot")
    for i in range(110):  # a busy ticket: 110 priority changes by a human
        fake.close(int(tid), priority=i % 7, status="new")
    conn = await harness.connector()
    update = TicketUpdate(tid, expected_queue="Raw", queue="Billing", priority="High", note="ticketd: Billing")
    assert isinstance(await conn.apply(update), Applied)
    assert isinstance(await conn.apply(update), Applied)  # a retry, e.g. after a timeout on the comment
    assert fake.comments(int(tid)) == ["ticketd: Billing"]


async def test_a_queue_the_agent_cannot_see_is_listed_for_once_not_per_ticket() -> None:
    """A ticket in a queue without SeeQueue keeps its id for a name (it never matches a configured one), and the
    queue listing is asked for it once, not again for every such ticket."""
    fake = FakeRT()
    fake.revoke(AGENT, "SeeQueue")
    for queue in ("Raw", "Billing", "Hardware"):
        fake.grant(AGENT, "SeeQueue", queue=queue)
    harness = FakeRTHarness(fake)
    try:
        ids = [harness.add_ticket(f"Ticket {i}", "body") for i in range(3)]
        for tid in ids:
            harness.human_move(tid, "Misc")
        conn = await harness.connector()
        listings = lambda: sum(r.path.endswith("/queues/all") for r in fake.requests)  # noqa: E731
        outcomes = [await conn.apply(TicketUpdate(t, expected_queue="Raw", queue="Billing")) for t in ids]
        assert all(not isinstance(o, Applied) and "queue #" in o.reason for o in outcomes)
        assert listings() == 2  # the first listing, then one more look for the unseen queue: not one per ticket
    finally:
        await harness.aclose()
