"""The IMAP tests' harness: a fresh account on the shared real Dovecot, behind a relay that can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends.imap import ImapHarness
from tests.support.fakes.dovecot import shared_dovecot


@pytest.fixture
async def h() -> AsyncIterator[ImapHarness]:
    harness = ImapHarness(shared_dovecot())
    try:
        yield harness
    finally:
        await harness.aclose()
