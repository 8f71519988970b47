"""Contract-suite backend: the same fake Zammad with Elasticsearch on (query-string search filters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends.zammad import ZammadHarness


async def make_harness(tmp_path: Path, request: pytest.FixtureRequest) -> ZammadHarness:
    return ZammadHarness(es=True)
