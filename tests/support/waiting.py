"""Waiting in async daemon tests: a condition looked at every `step` seconds, a named failure at `timeout`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0, step: float = 0.05) -> None:
    for _ in range(int(timeout / step)):
        if check():
            return
        await asyncio.sleep(step)
    pytest.fail(f"not within {timeout} s: {what}")
