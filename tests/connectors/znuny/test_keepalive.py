"""The Znuny client on kept-alive connections the server may end under it.

A server may close an idle kept-alive connection just as a request goes out on it (seen against the
suite's real Apache under load: "the server closed the connection, no answer" every 30-odd seconds).
Such a request got no byte back and was never read, so it is sent once more on a new connection; on a
connection of its own, no answer is the server's answer (Znuny's to an unknown web service).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import httpx
import pytest

from connectors.errors import ConnectorConfigError
from connectors.znuny import ZnunyConfig, ZnunyConnector
from tests.support.servers.znuny import ZnunyServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.znuny
async def test_more_calls_than_apache_allows_on_one_keep_alive_connection_all_succeed(
    znuny_server: ZnunyServer,
) -> None:
    config = ZnunyConfig.model_validate(
        {
            "type": "znuny",
            "url": znuny_server.url,
            "user": znuny_server.user,
            "password": znuny_server.password,
            "webservice": "GenericTicketConnectorREST-Release",
            "inbound_queues": ["Raw"],
            "queues": ["Misc"],
        }
    )
    opened: list[str] = []

    async def traced(request: httpx.Request) -> None:
        inner = request.extensions.get("trace")  # the client's own (it tells a reused connection from a new one)

        async def count(event: str, info: dict[str, object]) -> None:
            if event == "connection.connect_tcp.complete":
                opened.append(event)
            if inner is not None:
                await inner(event, info)

        request.extensions = {**request.extensions, "trace": count}

    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [traced]}) as http:
        connector = ZnunyConnector(config, http)
        for _ in range(250):  # about 2.5 connections' worth of requests: a search (POST), then TicketGet
            page = await connector.fetch_new(None, 1)
            assert page.tickets == [] or await connector.fetch_ticket(page.tickets[0].id) is not None
    assert len(opened) >= 3  # Apache did end connections under the client: the case happened


class _Server:
    """An HTTP/1.1 server on loopback that answers like Znuny and can drop a request unanswered."""

    def __init__(self, drop: Callable[[int, int], bool]) -> None:
        self.drop = drop  # (connection number, request number on it) -> close instead of answering
        self.requests: list[tuple[int, str]] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            for on_connection in itertools.count(1):
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode().split("\r\n")
                length = next((int(h.split(":")[1]) for h in headers if h.lower().startswith("content-length")), 0)
                await reader.readexactly(length)
                segments = line.split(" ")[1].split("?")[0].split("/")
                self.requests.append((number, segments[-2] if segments[-1].isdigit() else segments[-1]))
                if self.drop(number, on_connection):
                    return
                body = json.dumps(
                    {"SessionID": "s" * 32}
                    if "/Session" in line
                    else {"Ticket": [{"TicketID": 1, "Queue": "Misc", "StateType": "new", "Article": []}]}
                ).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _fetch_with(server: _Server) -> None:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    config = ZnunyConfig.model_validate(
        {
            "type": "znuny",
            "url": f"http://127.0.0.1:{port}",
            "user": "agent",
            "password": "pw",
            "webservice": "ticketd",
            "inbound_queues": ["Raw"],
        }
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            assert await ZnunyConnector(config, http).fetch_ticket("1") is None  # answered: Misc is not inbound
    finally:
        listening.close()
        await listening.wait_closed()


async def test_a_request_the_server_dropped_on_a_kept_alive_connection_is_sent_again_on_a_new_one() -> None:
    server = _Server(drop=lambda connection, request: (connection, request) == (1, 2))
    await _fetch_with(server)
    assert server.requests[:3] == [(1, "Session"), (1, "Ticket"), (2, "Ticket")]
    assert server.connections == 2


async def test_no_answer_on_a_connection_of_its_own_is_the_servers_answer_and_not_repeated() -> None:
    server = _Server(drop=lambda connection, request: True)  # as Znuny answers an unknown web service
    with pytest.raises(ConnectorConfigError, match="sent no answer at all, 3 times in a row"):
        await _fetch_with(server)
    assert server.requests == [(1, "Session"), (2, "Session"), (3, "Session")]  # the connector's tries, once each
