"""Contract-suite backend: the fake Znuny with the release example's routes (TicketSearch as POST /Ticket/Search)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends.znuny import PASSWORD, ZnunyHarness
from tests.support.fakes.znuny import FakeZnuny


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> ZnunyHarness:
    return ZnunyHarness(FakeZnuny(passwords={"agent1": PASSWORD}, layout="release"))
