"""Real servers the suite starts for itself (Znuny, ...), and the one rule for when one cannot start."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip where a real server is missing, but fail in CI, so a broken CI image never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"a real server the tests need cannot be started in CI: {reason}", pytrace=False)
    pytest.skip(reason)
