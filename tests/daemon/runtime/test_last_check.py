"""The last ownership check before a write leaves for the helpdesk (daemon.runtime.leadership.last_check).

A real loopback HTTP/1.1 server counts what it received: requests whose body arrived whole (a helpdesk
acts on those) and requests cut off after their headers (a helpdesk acts on nothing). A replica paused
after the headers went out must not send the body once it resumes: another replica may have taken the
connector over and written the same ticket meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daemon.errors import Fenced
from daemon.runtime.leadership import last_check

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    def __init__(self) -> None:
        self.whole: list[tuple[str, bytes]] = []  # (request line, body) of each request that arrived whole
        self.cut: list[str] = []  # request lines whose body never arrived

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                length = next((int(f.split(":", 1)[1]) for f in fields if f.lower().startswith("content-length:")), 0)
                try:
                    body = await reader.readexactly(length)
                except asyncio.IncompleteReadError:
                    self.cut.append(line)
                    return
                self.whole.append((line, body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    srv = Server()
    listening = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield srv, f"http://127.0.0.1:{port}"


class Lease:
    """What the daemon's `_fence` answers: fine, or Fenced once this replica lost the connector."""

    def __init__(self) -> None:
        self.lost = False
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.lost:
            raise Fenced("lease 'znuny': not renewed for 5.6 s; this replica stalled")


async def settle(srv: Server, cut: int) -> None:
    """The server has read what the client sent (a cut-off request is seen once its connection closed)."""
    for _ in range(200):
        if len(srv.cut) >= cut:
            return
        await asyncio.sleep(0.01)


async def test_a_write_goes_out_while_the_lease_holds_and_reads_are_not_checked(server: tuple[Server, str]) -> None:
    srv, url = server
    lease = Lease()
    async with httpx.AsyncClient(event_hooks={"request": [last_check(lease.check)]}) as http:
        assert (await http.post(f"{url}/update", json={"Ticket": {"Queue": "Billing"}})).status_code == 200
        writes = lease.checks
        assert (await http.get(f"{url}/ticket")).status_code == 200
    assert writes == 2  # the headers and the body, each as it was about to leave
    assert lease.checks == writes  # a GET changes nothing and is not checked
    assert [line for line, _ in srv.whole] == ["POST /update HTTP/1.1", "GET /ticket HTTP/1.1"]


async def test_a_lost_lease_stops_the_write_before_its_first_byte(server: tuple[Server, str]) -> None:
    srv, url = server
    lease = Lease()
    lease.lost = True
    async with httpx.AsyncClient(event_hooks={"request": [last_check(lease.check)]}) as http:
        with pytest.raises(Fenced):
            await http.post(f"{url}/update", json={"Ticket": {"Queue": "Billing"}})
    await asyncio.sleep(0.05)
    assert srv.whole == [] and srv.cut == []


async def test_a_replica_paused_after_the_headers_left_never_sends_the_body(server: tuple[Server, str]) -> None:
    """The headers went out, then the process stopped (SIGSTOP, a stalled node) and lost its lease meanwhile."""
    srv, url = server
    lease = Lease()

    async def paused_after_headers(event: str, info: dict[str, Any]) -> None:
        if event == "http11.send_request_headers.complete":
            lease.lost = True  # what a resumed replica finds: its lease expired, another replica owns it

    async with httpx.AsyncClient(event_hooks={"request": [last_check(lease.check)]}) as http:
        with pytest.raises(Fenced):
            await http.post(
                f"{url}/update", json={"Ticket": {"Queue": "Billing"}}, extensions={"trace": paused_after_headers}
            )
    await settle(srv, cut=1)
    assert srv.cut == ["POST /update HTTP/1.1"]  # the helpdesk saw headers only: it acts on nothing
    assert srv.whole == []
