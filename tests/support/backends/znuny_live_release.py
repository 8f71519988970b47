"""Contract-suite backend: the real Znuny through the release example (TicketSearch as POST /Ticket/Search)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends.znuny_live import LiveHarness, for_server


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> LiveHarness:
    return for_server(request, "GenericTicketConnectorREST-Release")
