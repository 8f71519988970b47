"""Shared helpers for the Znuny connector tests: recordings, a fake-backed connector, a recording transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.znuny import ZnunyConfig, ZnunyConnector
from tests.support.fakes.znuny import FakeZnuny

FIXTURES = Path(__file__).parent / "fixtures"
URL = "http://znuny.test"
PASSWORD = "agent1-test-pw"


def recording(prefix: str) -> dict[str, Any]:
    """One copied recording by its number."""
    path = next(FIXTURES.glob(f"{prefix}-*.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def recorded_response(prefix: str, request: httpx.Request) -> httpx.Response:
    """The recorded answer as httpx would surface it (dropped answers raise like a real socket)."""
    resp = recording(prefix)["response"]
    if resp["status"] is None:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    body = resp["body_text"].replace("<SESSION_ID>", "s" * 32).encode()
    headers = {k: v for k, v in resp["headers"].items() if k != "Content-Length"}
    return httpx.Response(resp["status"], headers=headers, content=body)


def make_config(**overrides: Any) -> ZnunyConfig:
    raw: dict[str, Any] = {
        "type": "znuny",
        "url": URL,
        "user": "agent1",
        "password": PASSWORD,
        "inbound_queues": ["Raw"],
        "queues": ["Billing", "Misc"],
    }
    raw.update(overrides)
    return ZnunyConfig.model_validate(raw)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> FakeZnuny:
    return FakeZnuny(passwords={"agent1": PASSWORD})


@pytest.fixture
async def connect(fake: FakeZnuny) -> AsyncIterator[Callable[..., ZnunyConnector]]:
    """Build connectors against `fake` (config overrides as keyword arguments)."""
    clients: list[httpx.AsyncClient] = []

    def build(**overrides: Any) -> ZnunyConnector:
        client = httpx.AsyncClient(transport=fake.transport())
        clients.append(client)
        return ZnunyConnector.from_config(make_config(**overrides), client)

    yield build
    for client in clients:
        await client.aclose()
