"""Contract-suite backend: the connector against the in-memory fake Zammad with Elasticsearch off."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.base import Connector
from connectors.registry import connector_class, parse_config
from tests.support.fakes.zammad import FakeZammad

URL = "http://zammad.test"


class ZammadHarness:
    """Drives the fake directly, as an agent in the browser would, behind the connector's back."""

    inbound = "Users"
    target = "Sales"
    other = "Service Desk"
    priority = "3 high"

    def __init__(self, *, es: bool) -> None:
        self.fake = FakeZammad(es=es)
        self._clients: list[httpx.AsyncClient] = []

    async def connector(self, *, bad_auth: bool = False) -> Connector:
        token = "wrong-token" if bad_auth else next(iter(self.fake.tokens))
        config = parse_config({"type": "zammad", "url": URL, "token": token, "inbound_groups": [self.inbound]})
        client = httpx.AsyncClient(transport=self.fake.transport(), timeout=5)
        self._clients.append(client)
        return connector_class("zammad").from_config(config, client)

    def add_ticket(self, subject: str, body: str) -> str:
        return str(self.fake.create_ticket(subject, body, group=self.inbound))

    def human_move(self, ticket_id: str, queue: str) -> None:
        self.fake.human_move(int(ticket_id), queue)

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        self.fake.close(int(ticket_id), group=queue, priority=priority)

    def queue_of(self, ticket_id: str) -> str:
        return self.fake.group_of(int(ticket_id))

    def priority_of(self, ticket_id: str) -> str | None:
        return self.fake.priority_of(int(ticket_id))

    def writes(self, ticket_id: str) -> int:
        return self.fake.writes[int(ticket_id)]

    def fail_next(self, calls: int) -> None:
        self.fake.fail_next(calls)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> ZammadHarness:
    return ZammadHarness(es=False)
