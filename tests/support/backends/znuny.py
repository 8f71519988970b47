"""Contract-suite backend: the connector against the in-memory fake Znuny through httpx.MockTransport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.znuny import ZnunyConfig, ZnunyConnector
from tests.support.fakes.znuny import FakeZnuny

URL = "http://znuny.test"
PASSWORD = "agent1-harness-pw"


def config(**overrides: Any) -> ZnunyConfig:
    """What an admin would write for the fake: inbound Raw, the other queues listed for the taxonomy."""
    raw: dict[str, Any] = {
        "type": "znuny",
        "url": URL,
        "user": "agent1",
        "password": PASSWORD,
        "inbound_queues": ["Raw"],
        "queues": ["Billing", "Misc", "Hardware", "Technical Support", "Junk", "Postmaster"],
    }
    raw.update(overrides)
    return ZnunyConfig.model_validate(raw)


class ZnunyHarness:
    inbound = "Raw"
    target = "Billing"
    other = "Misc"
    priority = "4 high"

    def __init__(self, fake: FakeZnuny) -> None:
        self.fake = fake
        self._clients: list[httpx.AsyncClient] = []

    async def connector(self, *, bad_auth: bool = False) -> Connector:
        client = httpx.AsyncClient(transport=self.fake.transport(), base_url=URL)
        self._clients.append(client)
        cfg = config(password="WrongPassword") if bad_auth else config()
        return ZnunyConnector.from_config(cfg, client)

    def add_ticket(self, subject: str, body: str) -> str:
        return str(self.fake.add_customer_ticket(subject, body, queue=self.inbound))

    def human_move(self, ticket_id: str, queue: str) -> None:
        self.fake.agent_update(int(ticket_id), queue=queue)

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        self.fake.agent_update(int(ticket_id), queue=queue, priority=priority, state="closed successful")

    def queue_of(self, ticket_id: str) -> str:
        return self.fake.queue_name(int(ticket_id))

    def priority_of(self, ticket_id: str) -> str | None:
        return self.fake.priority_name(int(ticket_id))

    def writes(self, ticket_id: str) -> int:
        return self.fake.writes(int(ticket_id))

    def fail_next(self, calls: int) -> None:
        self.fake.fail_next(calls)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> ZnunyHarness:
    return ZnunyHarness(FakeZnuny(passwords={"agent1": PASSWORD}))
