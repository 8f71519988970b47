"""The contract suite against a real Znuny / OTRS / OTOBO, when ZNUNY_URL, ZNUNY_USER, ZNUNY_PASSWORD are set.

Human-side actions go through the same REST API with a second session of their own. Optional:
ZNUNY_TYPE, ZNUNY_PATH_PREFIX, ZNUNY_WEBSERVICE, ZNUNY_INBOUND/TARGET/OTHER (queues), ZNUNY_PRIORITY.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.znuny import ZnunyConfig, ZnunyConnector
from tests.connectors.test_contract import *  # noqa: F403 - the suite runs here with the live harness

pytestmark = [
    pytest.mark.live,
    pytest.mark.anyio,
    pytest.mark.skipif(
        not all(os.environ.get(k) for k in ("ZNUNY_URL", "ZNUNY_USER", "ZNUNY_PASSWORD")),
        reason="set ZNUNY_URL, ZNUNY_USER and ZNUNY_PASSWORD to run against a real helpdesk",
    ),
]


def _config(**overrides: Any) -> ZnunyConfig:
    env = os.environ
    raw: dict[str, Any] = {
        "type": env.get("ZNUNY_TYPE", "znuny"),
        "url": env.get("ZNUNY_URL", "http://localhost"),
        "user": env.get("ZNUNY_USER"),
        "password": env.get("ZNUNY_PASSWORD"),
        "inbound_queues": [env.get("ZNUNY_INBOUND", "Raw")],
        "queues": [env.get("ZNUNY_TARGET", "Billing"), env.get("ZNUNY_OTHER", "Misc")],
    }
    for key in ("path_prefix", "webservice"):
        if f"ZNUNY_{key.upper()}" in env:
            raw[key] = env[f"ZNUNY_{key.upper()}"]
    raw.update(overrides)
    return ZnunyConfig.model_validate(raw)


class LiveHarness:
    inbound = os.environ.get("ZNUNY_INBOUND", "Raw")
    target = os.environ.get("ZNUNY_TARGET", "Billing")
    other = os.environ.get("ZNUNY_OTHER", "Misc")
    priority = os.environ.get("ZNUNY_PRIORITY", "4 high")

    def __init__(self) -> None:
        cfg = _config()
        self._base = cfg.base_url
        self._http = httpx.Client(timeout=30)
        password = cfg.password.get_secret_value() if cfg.password else ""
        answer = self._http.post(f"{self._base}/Session", json={"UserLogin": cfg.user, "Password": password})
        self._sid = answer.json()["SessionID"]
        self._clients: list[httpx.AsyncClient] = []

    def _call(self, method: str, route: str, **body: Any) -> dict[str, Any]:
        if method == "GET":
            r = self._http.get(f"{self._base}{route}", params={"SessionID": self._sid, **body})
        else:
            r = self._http.request(method, f"{self._base}{route}", json={"SessionID": self._sid, **body})
        data: dict[str, Any] = r.json()
        assert "Error" not in data, data
        return data

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = self._call("GET", f"/Ticket/{ticket_id}")["Ticket"][0]
        return ticket

    async def connector(self, *, bad_auth: bool = False) -> Connector:
        client = httpx.AsyncClient(timeout=30)
        self._clients.append(client)
        return ZnunyConnector(_config(password="WrongPassword") if bad_auth else _config(), client)

    def add_ticket(self, subject: str, body: str) -> str:
        ticket = {
            "Title": subject,
            "Queue": self.inbound,
            "State": "new",
            "Priority": "3 normal",
            "CustomerUser": "ticketd-live@example.com",
        }
        article = {
            "CommunicationChannel": "Email",
            "SenderType": "customer",
            "IsVisibleForCustomer": 1,
            "From": "ticketd-live@example.com",
            "Subject": subject,
            "Body": body,
            "ContentType": "text/plain; charset=utf8",
        }
        return str(self._call("POST", "/Ticket", Ticket=ticket, Article=article)["TicketID"])

    def human_move(self, ticket_id: str, queue: str) -> None:
        self._call("PATCH", f"/Ticket/{ticket_id}", Ticket={"Queue": queue})

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        fields = {"Queue": queue, "Priority": priority, "State": "closed successful"}
        self._call("PATCH", f"/Ticket/{ticket_id}", Ticket=fields)

    def queue_of(self, ticket_id: str) -> str:
        return str(self._ticket(ticket_id)["Queue"])

    def priority_of(self, ticket_id: str) -> str | None:
        return str(self._ticket(ticket_id)["Priority"])

    def writes(self, ticket_id: str) -> int:
        history = self._call("GET", f"/TicketHistory/{ticket_id}")["TicketHistory"][0]["History"]
        return sum(h["HistoryType"] in ("Move", "PriorityUpdate", "AddNote") for h in history)

    def fail_next(self, calls: int) -> None:
        pytest.skip("a real helpdesk cannot be told to fail")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._http.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness() -> AsyncIterator[LiveHarness]:
    h = LiveHarness()
    try:
        yield h
    finally:
        await h.aclose()
