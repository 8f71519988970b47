"""The `harness` fixture, parametrized over every connector backend.

Each backend module in `tests/support/backends/` exposes `async def make_harness(tmp_path, request)`
returning a started `Harness`; a backend whose server cannot start here is skipped (in CI: fails), never
faked. The `znuny_live_*` backends are the real Znuny the suite starts, one per imported web service.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.harness import Harness

BACKENDS = [
    "znuny",
    "znuny_release",
    "zammad",
    "zammad_es",
    "imap",
    "maildir",
    "znuny_live_development",
    "znuny_live_release",
    "znuny_live_ticketd",
    "rt",
    "rt_password",
    "rt_live",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    module = importlib.import_module(f"tests.support.backends.{request.param}")
    h: Harness = await module.make_harness(tmp_path, request)
    try:
        yield h
    finally:
        await h.aclose()
