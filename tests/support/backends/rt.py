"""Contract-suite backend: the RT connector against the in-memory FakeRT (tests/support/fakes/rt.py).

The fake starts as tests.support.servers.rt.start_rt leaves a real RT (queues, the ticketd agent, its rights and
token); the "human" is root, acting on the fake directly. Its twin on the real server is `rt_live`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.rt import RTConfig, RTConnector
from tests.support.fakes.rt import AGENT, AGENT_PASSWORD, AGENT_TOKEN, URL, FakeRT

WRONG_TOKEN = "1-99-0123456789abcdef"


class FakeRTHarness:
    inbound = "Raw"
    target = "Billing"
    other = "Misc"
    priority = "High"

    def __init__(self, fake: FakeRT, *, token: bool = True) -> None:
        self.fake = fake
        self._token = token
        self._clients: list[httpx.AsyncClient] = []

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The connector's config, as for the real RT: the agent's token (or user and password), inbound Raw."""
        auth: dict[str, Any] = {"token": AGENT_TOKEN} if self._token else {"user": AGENT, "password": AGENT_PASSWORD}
        return {
            "type": "rt",
            "url": URL,
            **auth,
            "inbound_queues": [self.inbound],
            "queues": [self.target, self.other, "Hardware"],
            **overrides,
        }

    def config(self, **overrides: Any) -> RTConfig:
        return RTConfig.model_validate(self.settings(**overrides))

    async def connector(self, *, bad_auth: bool = False, **overrides: Any) -> Connector:
        if bad_auth:
            overrides = {**overrides, **({"token": WRONG_TOKEN} if self._token else {"password": "wrong"})}
        client = httpx.AsyncClient(transport=self.fake.transport(), timeout=5)
        self._clients.append(client)
        return RTConnector(self.config(**overrides), client)

    def add_ticket(self, subject: str, body: str) -> str:
        return str(self.fake.create_ticket(subject, body, queue=self.inbound))

    def human_move(self, ticket_id: str, queue: str) -> None:
        self.fake.human_move(int(ticket_id), queue)

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        self.fake.close(int(ticket_id), queue=queue, priority=self.config().priorities[priority])

    def queue_of(self, ticket_id: str) -> str:
        return self.fake.queue_of(int(ticket_id))

    def priority_of(self, ticket_id: str) -> str | None:
        return self.config().priority_name(int(self.fake.priority_of(int(ticket_id))))

    def writes(self, ticket_id: str) -> int:
        return self.fake.writes(int(ticket_id))

    def fail_next(self, calls: int) -> None:
        self.fake.fail_next(calls)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> FakeRTHarness:
    return FakeRTHarness(FakeRT())


async def make_password_harness(tmp_path: Path, request: pytest.FixtureRequest) -> FakeRTHarness:
    """The same fake, the agent logging in with user and password (the connector rides RT's web session)."""
    return FakeRTHarness(FakeRT(), token=False)
