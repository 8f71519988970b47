"""Pushed ticket ids (webhooks, invokers) waiting to be routed: one bounded inbox per connector.

A push only says "look at ticket N now". The ticket still goes through the connector's pipeline (ledger ->
classify -> decide -> write back), so a duplicate or replayed push, or one for a ticket a poll already
routed, writes nothing twice. The inbox is bounded: an id already waiting is coalesced with it, and a push
that finds the inbox full is refused (429) without loss, because polling goes on at
`routing.push.poll_interval` and fetches every new ticket that a push did not route.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PushResult = Literal["accepted", "duplicate", "rejected", "invalid", "throttled"]


class InboxFull(Exception):
    """No room for a pushed id; polling will route the ticket."""


@dataclass(frozen=True)
class Offered:
    """What became of a push's ids: queued now, or already waiting (coalesced)."""

    queued: int
    coalesced: int


class Inbox:
    """Pushed ids of one connector in arrival order, each at most once, with the time it arrived."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._waiting: OrderedDict[str, float] = OrderedDict()
        self._wake = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, ticket_ids: Sequence[str]) -> Offered:
        """Queue ids not already waiting; InboxFull (nothing queued) if they do not all fit."""
        new = [t for t in dict.fromkeys(ticket_ids) if t not in self._waiting]
        if len(self._waiting) + len(new) > self.limit:
            raise InboxFull(f"{len(self._waiting)} pushed tickets already waiting (limit {self.limit})")
        now = time.monotonic()
        for tid in new:
            self._waiting[tid] = now
        if new:
            self._wake.set()
        return Offered(queued=len(new), coalesced=len(ticket_ids) - len(new))

    async def take(self) -> tuple[str, float] | None:
        """The oldest waiting id and when it arrived; None once the inbox is closed."""
        while not self._waiting:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._closed:
            return None
        return self._waiting.popitem(last=False)

    def close(self) -> None:
        """Stop handing out ids (shutdown, reload); what still waits is left to polling."""
        self._closed = True
        self._wake.set()
