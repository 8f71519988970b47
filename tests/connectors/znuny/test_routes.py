"""Which routes the connector uses: found on first use, probed by `check`, or taken from `routes:`."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import TicketUpdate
from connectors.errors import ConnectorConfigError, TransientError
from connectors.znuny import ZnunyConnector
from tests.connectors.znuny.conftest import PASSWORD, URL, make_config
from tests.support.fakes.znuny import FakeZnuny

pytestmark = pytest.mark.anyio


def _ops(fake: FakeZnuny) -> list[str]:
    return [f"{r.method} {r.path.split('/Webservice/', 1)[1].partition('/')[2]}" for r in fake.requests]


def _connector(fake: FakeZnuny, **overrides: object) -> ZnunyConnector:
    return ZnunyConnector.from_config(make_config(**overrides), httpx.AsyncClient(transport=fake.transport()))


async def test_release_layout_costs_one_route_error_on_first_use_then_posts_every_search() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout="release")
    tid = fake.add_customer_ticket("Invoice", "Billed twice.", queue="Raw")
    conn = _connector(fake)
    page = await conn.fetch_new(None, 10)
    assert str(tid) in {t.id for t in page.tickets}
    await conn.fetch_new(page.cursor, 10)
    await conn.fetch_closed(None, 10)
    assert _ops(fake)[:3] == ["POST Session", "GET Ticket", "POST Ticket/Search"]
    assert "GET Ticket" not in _ops(fake)[3:]
    search = next(r for r in fake.requests if r.path.endswith("/Ticket/Search"))
    assert b'"Queues":"Raw"' in search.body.replace(b" ", b"") and search.query == ""


async def test_development_layout_costs_nothing_extra() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD})
    await _connector(fake).fetch_new(None, 10)
    assert _ops(fake)[:2] == ["POST Session", "GET Ticket"] and "POST Ticket/Search" not in _ops(fake)


async def test_check_reports_the_layout_and_verifies_names() -> None:
    for layout, expected in [
        ("development", "TicketSearch GET /Ticket"),
        ("release", "TicketSearch POST /Ticket/Search"),
    ]:
        fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout=layout)
        found = await _connector(fake).check()
        assert expected in found and "names verified by search" in found
        writes = sum(fake.writes(t) for t in fake.tickets)
        assert writes == 0 or all(r.method != "PATCH" or "/Ticket/0" in r.path for r in fake.requests)


async def test_check_names_every_unknown_queue_and_priority_with_its_key() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout="release")
    conn = _connector(fake, queues=["Billing", "Biling"], priorities=["3 normal", "6 urgent"], inbound_queues=["raw"])
    with pytest.raises(ConnectorConfigError) as info:
        await conn.check()
    message = str(info.value)
    for part in ("queue 'raw' (in 'inbound_queues')", "queue 'Biling' (in 'queues')", "priority '6 urgent'"):
        assert part in message
    assert "'Billing'" not in message


async def test_a_web_service_without_ticket_update_is_a_config_error_naming_it() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout="release")
    fake.routes = [r for r in fake.routes if r[2] != "TicketUpdate"]
    with pytest.raises(ConnectorConfigError) as info:
        await _connector(fake).check()
    assert "has no TicketUpdate operation (tried PATCH /Ticket/:TicketID)" in str(info.value)
    assert "ticketd-webservice.yml" in str(info.value)


async def test_a_web_service_without_any_search_route_is_a_config_error_on_first_use() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout="release")
    fake.routes = [r for r in fake.routes if r[2] != "TicketSearch"]
    with pytest.raises(
        ConnectorConfigError, match=r"no TicketSearch operation \(tried GET /Ticket, POST /Ticket/Search\)"
    ):
        await _connector(fake).fetch_new(None, 10)


async def test_configured_routes_are_used_without_probing() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD}, layout="release")
    tid = fake.add_customer_ticket("Invoice", "Billed twice.", queue="Raw")
    conn = _connector(fake, routes={"ticket_search": "POST /Ticket/Search"})
    await conn.fetch_new(None, 10)
    await conn.apply(TicketUpdate(str(tid), "Raw", queue="Billing"))
    assert "GET Ticket" not in _ops(fake) and fake.queue_name(tid) == "Billing"
    assert "routes from the config" in await conn.check()


def test_a_malformed_route_names_the_key() -> None:
    with pytest.raises(ValidationError, match="ticket_get"):
        make_config(routes={"ticket_search": "POST /Ticket/Search", "ticket_get": "GET /Ticket"})
    with pytest.raises(ValidationError, match="is not a route"):
        make_config(routes={"ticket_search": "/Ticket/Search"})


async def test_unknown_web_service_is_a_config_error_naming_webservice_and_url() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD})  # serves GenericTicketConnectorREST only
    for call in ("check", "fetch_new"):
        conn = _connector(fake, webservice="NoSuchWebservice")
        with pytest.raises(ConnectorConfigError) as info:
            await (conn.check() if call == "check" else conn.fetch_new(None, 10))
        assert f"webservice 'NoSuchWebservice': {URL}/znuny/nph-genericinterface.pl/Webservice/NoSuchWebservice" in str(
            info.value
        )
    assert len(fake.requests) == 6  # three tries each, then it stops asking


async def test_one_empty_reply_at_first_contact_is_transient_not_a_config_error() -> None:
    fake = FakeZnuny(passwords={"agent1": PASSWORD})
    inner = fake.transport()
    dropped: list[bool] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if not dropped:
            dropped.append(True)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return await inner.handle_async_request(request)

    conn = ZnunyConnector.from_config(make_config(), httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    await conn.fetch_new(None, 10)  # the second login attempt got through
    fake.fail_next(2)  # 500, then an empty reply: after first contact that is only a flaky server
    with pytest.raises(TransientError):
        await conn.fetch_new(None, 10)
    with pytest.raises(TransientError):
        await conn.fetch_new(None, 10)
