"""Contract-suite backend: the connector against the real Request Tracker 5 the suite starts (rt_server).

Each harness gets an inbound queue of its own, so tickets of earlier tests never show up as new work. The
"human" is RT's root user, talking REST 2 behind the connector's back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.rt import RTConfig, RTConnector
from tests.support.servers.rt import RTServer


class RTHarness:
    target = "Billing"
    other = "Misc"
    priority = "High"

    def __init__(self, server: RTServer, *, token: bool = True) -> None:
        self.server = server
        self.inbound = server.new_queue("Inbound")
        self._token = token
        self._clients: list[httpx.AsyncClient] = []
        self._queues: dict[str, str] = {}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The connector's config: the agent's auth token (or user and password), this harness's inbound queue."""
        auth: dict[str, Any] = (
            {"token": self.server.token}
            if self._token
            else {"user": self.server.agent, "password": self.server.agent_password}
        )
        return {
            "type": "rt",
            "url": self.server.url,
            **auth,
            "inbound_queues": [self.inbound],
            "queues": [self.target, self.other, "Hardware"],
            **overrides,
        }

    async def connector(self, *, bad_auth: bool = False, **overrides: Any) -> Connector:
        if bad_auth:
            overrides = {**overrides, **({"token": "1-99-0123456789abcdef"} if self._token else {"password": "wrong"})}
        client = httpx.AsyncClient(timeout=30)
        self._clients.append(client)
        return RTConnector(RTConfig.model_validate(self.settings(**overrides)), client)

    def add_ticket(self, subject: str, body: str, *, queue: str | None = None, content_type: str = "text/plain") -> str:
        ticket = {
            "Queue": queue or self.inbound,
            "Subject": subject,
            "Content": body,
            "ContentType": content_type,
            "Requestor": "customer@ticketd.test",
        }
        return str(self.server.rest("POST", "/ticket", json=ticket)["id"])

    def human_move(self, ticket_id: str, queue: str) -> None:
        self.server.rest("PUT", f"/ticket/{ticket_id}", json={"Queue": queue})

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        number = RTConfig.model_validate(self.settings()).priorities[priority]
        self.server.rest("PUT", f"/ticket/{ticket_id}", json={"Queue": queue, "Priority": number, "Status": "resolved"})

    def record(self, ticket_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.server.rest("GET", f"/ticket/{ticket_id}")
        return data

    def queue_of(self, ticket_id: str) -> str:
        qid = str(self.record(ticket_id)["Queue"]["id"])
        if qid not in self._queues:
            self._queues[qid] = str(self.server.rest("GET", f"/queue/{qid}")["Name"])
        return self._queues[qid]

    def priority_of(self, ticket_id: str) -> str | None:
        return RTConfig.model_validate(self.settings()).priority_name(int(self.record(ticket_id)["Priority"]))

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        params = {"fields": "Type,Field,Creator,Data", "per_page": "100"}
        items: list[dict[str, Any]] = self.server.rest("GET", f"/ticket/{ticket_id}/history", params=params)["items"]
        return items

    def writes(self, ticket_id: str) -> int:
        """Every transaction the ticketd agent made on the ticket (a queue or priority change, a comment)."""
        return sum(t["Creator"]["id"] == self.server.agent for t in self.history(ticket_id))

    def comments(self, ticket_id: str) -> int:
        """ticketd's private comments on the ticket."""
        return sum(t["Type"] == "Comment" and t["Creator"]["id"] == self.server.agent for t in self.history(ticket_id))

    def fail_next(self, calls: int) -> None:
        pytest.skip("a real helpdesk cannot be told to fail (the fake RT's tests cover this)")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> RTHarness:
    return RTHarness(request.getfixturevalue("rt_server"))
