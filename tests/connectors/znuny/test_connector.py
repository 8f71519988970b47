"""The connector against the fake (and against single recorded answers): sessions, errors, paging, writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from connectors.base import Applied, Skipped, TicketUpdate
from connectors.errors import AuthError, ConnectorConfigError, TicketError, TransientError
from connectors.znuny import ZnunyConnector
from tests.connectors.znuny.conftest import PASSWORD, make_config, recorded_response, recording
from tests.support.fakes.znuny import FakeZnuny

pytestmark = pytest.mark.anyio
Connect = Callable[..., ZnunyConnector]


def _ops(fake: FakeZnuny) -> list[str]:
    return [f"{r.method} {r.path.rsplit('GenericTicketConnectorREST', 1)[1]}" for r in fake.requests]


async def _all_new(conn: ZnunyConnector, limit: int, cursor: str | None = None) -> tuple[list[str], str | None]:
    ids: list[str] = []
    for _ in range(50):
        page = await conn.fetch_new(cursor, limit)
        ids += [t.id for t in page.tickets]
        cursor = page.cursor
        if not page.more:
            break
    return ids, cursor


# -- sessions -------------------------------------------------------------------------------------


async def test_expired_session_is_renewed_once_then_succeeds(fake: FakeZnuny, connect: Connect) -> None:
    conn = connect()
    await conn.check()
    fake.expire_session(next(iter(fake.sessions)))
    page = await conn.fetch_new(None, 10)
    assert {t.id for t in page.tickets} == {"3"}
    assert _ops(fake).count("POST /Session") == 2
    assert _ops(fake)[-4:-1] == ["GET /Ticket", "POST /Session", "GET /Ticket"]


async def test_bad_password_is_auth_error_without_a_request_storm(fake: FakeZnuny, connect: Connect) -> None:
    conn = connect(password="WrongPassword")
    for call in (conn.check(), conn.fetch_new(None, 10), conn.apply(TicketUpdate("3", "Raw", queue="Misc"))):
        with pytest.raises(AuthError) as info:
            await call
        assert "WrongPassword" not in str(info.value)
    assert _ops(fake) == ["POST /Session"] * 3


async def test_password_changed_while_running(fake: FakeZnuny, connect: Connect) -> None:
    conn = connect()
    await conn.check()
    fake.users[2].password = "rotated"
    fake.sessions.clear()
    before = len(fake.requests)
    with pytest.raises(AuthError):
        await conn.fetch_new(None, 10)
    assert _ops(fake)[before:] == ["GET /Ticket", "POST /Session"]


async def test_configured_session_id_cannot_be_renewed(fake: FakeZnuny, connect: Connect) -> None:
    conn = connect(user=None, password=None, session_id="garbage0000000000000000000000000")
    with pytest.raises(AuthError):
        await conn.fetch_new(None, 10)
    assert _ops(fake) == ["GET /Ticket"]


async def test_valid_session_id_works(fake: FakeZnuny, connect: Connect) -> None:
    sid = fake.handle(
        "POST",
        "/znuny/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST/Session",
        "",
        {"Content-Type": "application/json"},
        json.dumps({"UserLogin": "agent1", "Password": PASSWORD}).encode(),
    )
    session = sid.json()["SessionID"]  # type: ignore[union-attr]
    conn = connect(user=None, password=None, session_id=session)
    await conn.check()
    assert [t.id for t in (await conn.fetch_new(None, 5)).tickets] == ["3"]


# -- where parameters travel ----------------------------------------------------------------------


async def test_get_parameters_in_query_never_in_body(fake: FakeZnuny, connect: Connect) -> None:
    tid = str(fake.add_customer_ticket("Printer", "Error 41"))
    conn = connect(inbound_queues=["Raw", "Technical Support"])
    await conn.fetch_new(None, 10)
    await conn.fetch_closed(None, 10)
    await conn.apply(TicketUpdate(tid, "Raw", queue="Billing", priority="4 high", note="routed"))
    gets = [r for r in fake.requests if r.method == "GET"]
    assert gets and all(r.body == b"" and "SessionID=" in r.query for r in gets)
    search = next(r for r in gets if r.path.endswith("/Ticket"))
    assert "Queues=Raw&Queues=Technical+Support" in search.query and "StateType=new&StateType=open" in search.query
    assert all("Password" not in r.query and PASSWORD not in r.query for r in fake.requests)
    login = next(r for r in fake.requests if r.method == "POST")
    assert json.loads(login.body) == {"UserLogin": "agent1", "Password": PASSWORD}
    patch = next(r for r in fake.requests if r.method == "PATCH")
    assert r"SessionID" in json.loads(patch.body) and patch.query == ""


# -- paging ---------------------------------------------------------------------------------------


async def test_cursor_pages_through_tickets_created_in_the_same_second(fake: FakeZnuny, connect: Connect) -> None:
    same_second = [str(fake.add_customer_ticket(f"t{i}", "b")) for i in range(5)]
    fake.advance(1)
    next_second = [str(fake.add_customer_ticket(f"u{i}", "b")) for i in range(3)]
    conn = connect()
    ids, cursor = await _all_new(conn, 2)
    assert ids == ["3", *same_second, *next_second]
    fake.advance(0.2)  # still the same second as the last ones
    late = str(fake.add_customer_ticket("late", "b"))
    assert (await _all_new(conn, 2, cursor))[0] == [late]
    assert (await _all_new(conn, 2, cursor))[0] == [late]  # a cursor can be replayed


async def test_page_more_when_the_search_was_cut(fake: FakeZnuny, connect: Connect) -> None:
    for i in range(3):
        fake.add_customer_ticket(f"t{i}", "b")
    conn = connect()
    first = await conn.fetch_new(None, 2)
    assert len(first.tickets) == 2 and first.more
    second = await conn.fetch_new(first.cursor, 2)
    assert len(second.tickets) == 2 and not second.more
    empty = await conn.fetch_new(second.cursor, 2)
    assert empty.tickets == [] and empty.cursor == second.cursor and not empty.more


async def test_only_inbound_queues_and_new_states(fake: FakeZnuny, connect: Connect) -> None:
    a = fake.add_customer_ticket("in raw", "b")
    fake.add_customer_ticket("in misc", "b", queue="Misc")
    c = fake.add_customer_ticket("open in raw", "b", state="open")
    fake.add_customer_ticket("closed in raw", "b", state="closed successful")
    ids = {t.id for t in (await connect().fetch_new(None, 50)).tickets}
    assert ids == {"3", str(a), str(c)}
    ids = {t.id for t in (await connect(new_state_types=["new"]).fetch_new(None, 50)).tickets}
    assert ids == {"3", str(a)}


async def test_body_falls_back_to_the_first_article(fake: FakeZnuny, connect: Connect) -> None:
    tid = fake.add_customer_ticket("Outbound", "Dear customer, maintenance on Saturday.")
    fake.tickets[tid].articles[0].fields["SenderType"] = "agent"
    ticket = next(t for t in (await connect().fetch_new(None, 50)).tickets if t.id == str(tid))
    assert ticket.body == "Dear customer, maintenance on Saturday."


async def test_closed_tickets_page_by_close_time(fake: FakeZnuny, connect: Connect) -> None:
    ids = []
    for i in range(7):
        tid = fake.add_customer_ticket(f"c{i}", f"body {i}")
        fake.agent_update(tid, queue="Billing", priority="4 high", state="closed successful")
        ids.append(str(tid))
        fake.advance(3600 * (i % 3))
    reopened = ids[0]
    fake.agent_update(int(reopened), state="open")
    fake.advance(10)
    fake.agent_update(int(reopened), state="closed successful", queue="Misc")
    conn = connect()
    got: list[tuple[str, str]] = []
    cursor = None
    for _ in range(100):
        page = await conn.fetch_closed(cursor, 2)
        got += [(t.id, t.queue) for t in page.tickets]
        assert all(t.closed_at is not None for t in page.tickets)
        cursor = page.cursor
        if not page.more:
            break
    assert [i for i, _ in got] == ["1", *ids[1:], reopened]
    assert dict(got)[reopened] == "Misc"
    assert (await conn.fetch_closed(cursor, 2)).tickets == []


# -- writes ---------------------------------------------------------------------------------------


async def test_apply_is_one_patch_and_idempotent(fake: FakeZnuny, connect: Connect) -> None:
    tid = fake.add_customer_ticket("VPN", "down")
    conn = connect()
    update = TicketUpdate(str(tid), "Raw", queue="Billing", priority="4 high", note="ticketd: routed")
    assert await conn.apply(update) == Applied(str(tid), ("queue", "priority", "note"))
    assert await conn.apply(update) == Applied(str(tid), ())
    assert _ops(fake).count(f"PATCH /Ticket/{tid}") == 1
    assert fake.writes(tid) == 3
    note = fake.tickets[tid].articles[-1].fields
    assert (note["Subject"], note["Body"], note["IsVisibleForCustomer"], note["CommunicationChannelID"]) == (
        "ticketd",
        "ticketd: routed",
        0,
        3,
    )


async def test_concurrent_applies_each_write_once_even_across_an_expired_session(fake: FakeZnuny) -> None:
    """`concurrent_apply`: the daemon may write two tickets back at once; the session is the only shared state."""
    assert ZnunyConnector.concurrent_apply

    class Interleaving(httpx.AsyncBaseTransport):
        """The fake answers synchronously; yield first, so the calls really are in flight together."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await anyio.sleep(0)
            return await inner.handle_async_request(request)

    inner = fake.transport()
    ids = [fake.add_customer_ticket(f"VPN {i}", "down") for i in range(6)]
    client = httpx.AsyncClient(transport=Interleaving())
    conn = ZnunyConnector.from_config(make_config(), client)
    await conn.check()
    fake.expire_session(next(iter(fake.sessions)))  # every call in flight finds the session gone
    outcomes: dict[int, object] = {}

    async def one(tid: int) -> None:
        outcomes[tid] = await conn.apply(TicketUpdate(str(tid), "Raw", queue="Billing", note="ticketd: routed"))

    try:
        async with anyio.create_task_group() as tg:
            for tid in ids:
                tg.start_soon(one, tid)
    finally:
        await client.aclose()
    assert outcomes == {tid: Applied(str(tid), ("queue", "note")) for tid in ids}
    assert [fake.writes(t) for t in ids] == [2] * len(ids)
    # More than one call found the session expired at once (they overlapped), and each renewed it at most once.
    assert 3 <= _ops(fake).count("POST /Session") <= 1 + len(ids)


async def test_note_only_update_is_written_once(fake: FakeZnuny, connect: Connect) -> None:
    tid = fake.add_customer_ticket("VPN", "down")
    conn = connect()
    update = TicketUpdate(str(tid), "Raw", queue="Raw", note="stays here")
    assert await conn.apply(update) == Applied(str(tid), ("note",))
    assert await conn.apply(update) == Applied(str(tid), ())
    assert fake.writes(tid) == 1


async def test_human_move_is_skipped_naming_the_queue(fake: FakeZnuny, connect: Connect) -> None:
    tid = fake.add_customer_ticket("VPN", "down")
    fake.agent_update(tid, queue="Hardware")
    outcome = await connect().apply(TicketUpdate(str(tid), "Raw", queue="Billing"))
    assert isinstance(outcome, Skipped) and "Hardware" in outcome.reason
    assert not any(r.method == "PATCH" for r in fake.requests)


async def test_apply_on_unknown_or_forbidden_tickets(fake: FakeZnuny, connect: Connect) -> None:
    conn = connect()
    for tid in ("999999", "abc"):
        with pytest.raises(TicketError):
            await conn.apply(TicketUpdate(tid, "Raw", queue="Misc"))
    with pytest.raises(TicketError) as info:  # the 411 fault: HTTP 500 but a permission problem
        await conn.apply(TicketUpdate("3", "Raw", queue="Restricted"))
    assert "queue could not be updated" in str(info.value)
    assert fake.queue_name(3) == "Raw"
    with pytest.raises(TicketError):
        await conn.apply(TicketUpdate("3", "Raw", priority="9 apocalyptic"))


# -- error mapping from single recorded answers ------------------------------------------------------

TICKET_300 = recording("300")


def _replay_transport(answers: dict[str, str]) -> httpx.MockTransport:
    """Answer each method with one recording; GET /Ticket/<id> answers 300 unless told otherwise."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        key = (
            "GET /Ticket/:id"
            if request.method == "GET" and "/Ticket/" in path
            else f"{request.method} {path.split('REST')[1]}"
        )
        if key in answers:
            return recorded_response(answers[key], request)
        if key == "GET /Ticket/:id":
            return recorded_response("300", request)
        if key == "POST /Session":
            return httpx.Response(200, json={"SessionID": "s" * 32})
        raise AssertionError(key)

    return httpx.MockTransport(handler)


ERRORS: list[tuple[str, dict[str, str], str, type[Exception]]] = [
    ("011 SessionCreate.AuthFail", {"POST /Session": "011"}, "check", AuthError),
    ("026 expired session, renewal refused", {"GET /Ticket": "026", "POST /Session": "011"}, "fetch_new", AuthError),
    ("216 empty search {}", {"GET /Ticket": "216"}, "fetch_new", type(None)),
    ("316 TicketGet.AccessDenied", {"GET /Ticket/:id": "316"}, "apply", TicketError),
    ("407 TicketUpdate.InvalidParameter", {"PATCH /Ticket/4": "407"}, "apply", TicketError),
    ("410 TicketUpdate.AccessDenied", {"PATCH /Ticket/4": "410"}, "apply", TicketError),
    ("411 HTTP 500 faultstring", {"PATCH /Ticket/4": "411"}, "apply", TicketError),
    ("412 TicketUpdate.AccessDenied", {"PATCH /Ticket/4": "412"}, "apply", TicketError),
    ("413 plain-text 500", {"PATCH /Ticket/4": "413"}, "apply", TransientError),
    ("600 route error", {"GET /Ticket": "600", "POST /Ticket/Search": "600"}, "fetch_new", ConnectorConfigError),
    ("605 no status line", {"GET /Ticket": "605"}, "fetch_new", TransientError),
    ("606 zero bytes", {"GET /Ticket": "606"}, "fetch_closed", TransientError),
]


@pytest.mark.parametrize(("answers", "call", "error"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
async def test_recorded_errors_map_to_the_right_class(
    answers: dict[str, str], call: str, error: type[Exception]
) -> None:
    async with httpx.AsyncClient(transport=_replay_transport(answers)) as client:
        conn = ZnunyConnector.from_config(make_config(), client)
        calls: dict[str, Any] = {
            "check": conn.check,
            "fetch_new": lambda: conn.fetch_new(None, 10),
            "fetch_closed": lambda: conn.fetch_closed(None, 10),
            "apply": lambda: conn.apply(TicketUpdate("4", "Hardware", queue="Misc", priority="4 high")),
        }
        if error is type(None):
            page = await calls[call]()
            assert page.tickets == [] and not page.more
            return
        with pytest.raises(error):
            await calls[call]()


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(503, headers={"Retry-After": "30"}, text="busy"),
        httpx.Response(200, content=b"[" * 50_000 + b"]" * 50_000),  # a RecursionError in json.loads before
        httpx.Response(500, content=b"{" + b'"a":[' * 50_000),  # a fault body too deep to read
    ],
    ids=["connect", "timeout", "html-200", "503", "json-too-deep", "fault-too-deep"],
)
async def test_transport_failures_are_transient(failure: Exception | httpx.Response) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(failure, Exception):
            raise failure
        return failure

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        conn = ZnunyConnector.from_config(make_config(), client)
        with pytest.raises(TransientError) as info:
            await conn.check()
    assert PASSWORD not in str(info.value)
    if isinstance(failure, httpx.Response) and failure.status_code == 503:
        assert info.value.retry_after == 30


# -- OTRS / OTOBO -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "prefix", "configured"),
    [("otrs", "otrs", None), ("otobo", "otobo", None), ("znuny", "helpdesk", "helpdesk"), ("otrs", "", "")],
)
async def test_path_prefixes(kind: str, prefix: str, configured: str | None) -> None:
    fake = FakeZnuny(prefix=prefix, passwords={"agent1": PASSWORD})
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        extra = {} if configured is None else {"path_prefix": configured}
        conn = ZnunyConnector.from_config(make_config(type=kind, **extra), client)
        await conn.check()
        assert [t.id for t in (await conn.fetch_new(None, 5)).tickets] == ["3"]
    assert fake.requests[0].path.startswith(f"/{prefix}/nph-genericinterface.pl/".replace("//", "/"))


async def test_server_time_zone(connect: Connect) -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, server_timezone="Europe/Berlin")
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        conn = ZnunyConnector.from_config(make_config(timezone="Europe/Berlin"), client)
        tid = fake.add_customer_ticket("tz", "b")
        ticket = next(t for t in (await conn.fetch_new(None, 50)).tickets if t.id == str(tid))
    assert ticket.created_at.timestamp() == fake.ticket(tid).created
