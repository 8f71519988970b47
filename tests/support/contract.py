"""The connector contract suite: one set of tests every connector passes, against the `harness` fixture.

Collected where it is imported: tests/connectors/test_contract.py (every backend, parametrized in its
`conftest.py`) and tests/connectors/znuny/test_live.py (a helpdesk of yours). Not a test module itself.
"""

from __future__ import annotations

import asyncio

import pytest

from connectors.base import Applied, Connector, Skipped, TicketUpdate
from connectors.errors import AuthError, TicketError, TransientError
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


async def _new_ids(conn: Connector) -> dict[str, str]:
    """Every new ticket reachable from the start, id -> subject (pages followed to the end)."""
    seen: dict[str, str] = {}
    cursor = None
    for _ in range(100):
        page = await conn.fetch_new(cursor, 3)
        for t in page.tickets:
            assert t.id not in seen, f"ticket {t.id} delivered twice"
            seen[t.id] = t.subject
        if not page.more:
            break
        cursor = page.cursor
    return seen


async def test_check_and_taxonomy(harness: Harness) -> None:
    conn = await harness.connector()
    await conn.check()
    queues = {q.name for q in await conn.list_queues()}
    assert {harness.inbound, harness.target, harness.other} <= queues
    assert harness.priority in {p.name for p in await conn.list_priorities()}


async def test_new_ticket_is_fetched_with_subject_and_body(harness: Harness) -> None:
    tid = harness.add_ticket("Printer offline", "The printer on floor 3 shows error 41.")
    conn = await harness.connector()
    page = await conn.fetch_new(None, 50)
    ticket = next(t for t in page.tickets if t.id == tid)
    assert ticket.subject == "Printer offline"
    assert "error 41" in ticket.body
    assert ticket.queue == harness.inbound
    assert ticket.created_at.tzinfo is not None


async def test_paging_delivers_every_ticket_once_and_cursor_resumes(harness: Harness) -> None:
    ids = [harness.add_ticket(f"Ticket {i}", f"body {i}") for i in range(7)]
    conn = await harness.connector()
    first = await _new_ids(conn)
    assert set(ids) <= set(first)
    # Resume from the last cursor: only tickets that arrive later come back.
    cursor = None
    while True:
        page = await conn.fetch_new(cursor, 50)
        cursor = page.cursor
        if not page.more:
            break
    late = harness.add_ticket("Late arrival", "arrived after the cursor")
    page = await conn.fetch_new(cursor, 50)
    assert [t.id for t in page.tickets] == [late]


async def test_apply_moves_and_sets_priority(harness: Harness) -> None:
    tid = harness.add_ticket("Invoice wrong", "We were charged twice.")
    conn = await harness.connector()
    update = TicketUpdate(tid, expected_queue=harness.inbound, queue=harness.target, priority=harness.priority)
    outcome = await conn.apply(update)
    assert isinstance(outcome, Applied)
    assert harness.queue_of(tid) == harness.target
    assert harness.priority_of(tid) == harness.priority


async def test_apply_twice_has_one_effect(harness: Harness) -> None:
    tid = harness.add_ticket("VPN down", "Nobody can connect.")
    conn = await harness.connector()
    update = TicketUpdate(
        tid, expected_queue=harness.inbound, queue=harness.target, priority=harness.priority, note="ticketd: routed"
    )
    first = await conn.apply(update)
    writes = harness.writes(tid)
    second = await conn.apply(update)
    assert isinstance(first, Applied) and first.changed
    assert isinstance(second, Applied) and second.changed == ()
    assert harness.writes(tid) == writes
    assert harness.queue_of(tid) == harness.target


class Refused(Exception):
    """What the daemon's guard raises when this replica lost the connector (daemon.errors.Fenced)."""


async def test_a_guard_that_refuses_stops_the_write_back(harness: Harness) -> None:
    """The daemon's guard (a replica still owns the connector) is asked right before the helpdesk is written."""
    tid = harness.add_ticket("Printer jam", "Tray 2 jams on every page.")
    conn = await harness.connector()
    asked: list[str] = []

    async def lost() -> None:
        asked.append(tid)
        raise Refused("another replica owns this connector now")

    update = TicketUpdate(
        tid, expected_queue=harness.inbound, queue=harness.target, priority=harness.priority, note="ticketd: x"
    )
    writes = harness.writes(tid)
    with pytest.raises(Refused):
        await conn.apply(TicketUpdate(**{**vars(update), "guard": lost}))
    assert asked == [tid]
    assert harness.writes(tid) == writes and harness.queue_of(tid) == harness.inbound
    assert isinstance(await conn.apply(update), Applied)  # without the guard the same update goes through


async def test_ticket_moved_by_a_human_is_skipped(harness: Harness) -> None:
    tid = harness.add_ticket("Laptop broken", "Screen flickers.")
    harness.human_move(tid, harness.other)
    writes = harness.writes(tid)
    conn = await harness.connector()
    outcome = await conn.apply(TicketUpdate(tid, expected_queue=harness.inbound, queue=harness.target))
    assert isinstance(outcome, Skipped)
    assert harness.other in outcome.reason
    assert harness.queue_of(tid) == harness.other
    assert harness.writes(tid) == writes


async def test_closed_tickets_are_harvested_with_final_labels(harness: Harness) -> None:
    tid = harness.add_ticket("Refund request", "Please refund order 1234.")
    harness.close(tid, harness.target, harness.priority)
    conn = await harness.connector()
    found = {}
    cursor = None
    for _ in range(100):
        page = await conn.fetch_closed(cursor, 50)
        found.update({t.id: t for t in page.tickets})
        cursor = page.cursor
        if not page.more:
            break
    ticket = found[tid]
    assert (ticket.queue, ticket.priority) == (harness.target, harness.priority)
    assert "refund" in ticket.body.lower()


async def test_bad_credentials_raise_auth_error(harness: Harness) -> None:
    conn = await harness.connector(bad_auth=True)
    with pytest.raises(AuthError):
        await conn.check()
    with pytest.raises(AuthError):
        await conn.fetch_new(None, 10)


async def test_server_failure_raises_transient_error(harness: Harness) -> None:
    conn = await harness.connector()
    await conn.check()
    harness.fail_next(1)
    with pytest.raises(TransientError):
        await conn.fetch_new(None, 10)
    await conn.fetch_new(None, 10)  # and recovers without a new connector


async def test_unknown_ticket_raises_ticket_error(harness: Harness) -> None:
    conn = await harness.connector()
    with pytest.raises(TicketError):
        await conn.apply(TicketUpdate("999999", expected_queue=harness.inbound, queue=harness.target))


async def test_one_ticket_by_id_where_offered(harness: Harness) -> None:
    """A pushed id: the new ticket itself; None once it left the inbound queue, or for an id nobody has."""
    tid = harness.add_ticket("Pushed ticket", "The scanner on floor 2 jams on every page.")
    conn = await harness.connector()
    if type(conn).fetch_ticket is Connector.fetch_ticket:  # mailboxes wake on IDLE or file events instead
        with pytest.raises(NotImplementedError):
            await conn.fetch_ticket(tid)
        return
    ticket = await conn.fetch_ticket(tid)
    assert ticket is not None and ticket.id == tid and ticket.subject == "Pushed ticket"
    assert "jams on every page" in ticket.body and ticket.queue == harness.inbound
    assert await conn.fetch_ticket("987654") is None
    harness.human_move(tid, harness.other)
    assert await conn.fetch_ticket(tid) is None  # no longer new work: a late push must not route it


async def test_a_watch_wakes_on_new_work_where_offered(harness: Harness) -> None:
    """Mailboxes signal new mail themselves (IDLE, file events); HTTP helpdesks push instead and offer no watch."""
    conn = await harness.connector()
    watch = await conn.watch()
    if type(conn).watch is Connector.watch:
        assert watch is None
        return
    assert watch is not None
    try:
        assert await watch.wait(0.5) is False  # nothing arrived: the wait ends at its timeout
        harness.add_ticket("Watched ticket", "The badge reader at the side door stays red.")
        assert await watch.wait(10) is True
        harness.add_ticket("Second watched ticket", "arrived between two waits")
        await asyncio.sleep(0.5)
        assert await watch.wait(10) is True  # what arrived while nobody waited is reported by the next wait
        closing = asyncio.create_task(watch.wait(30))
        await asyncio.sleep(0.3)
        await asyncio.wait_for(watch.aclose(), 5)
        assert await asyncio.wait_for(closing, 5) is False  # closing ends a wait under way at once
    finally:
        await watch.aclose()
