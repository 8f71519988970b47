"""New work announced by the helpdesk instead of found by polling: pushed ids, and watched mailboxes.

Two ways in, one path on: whatever the helpdesk says, the ticket goes through the connector's
pipeline (ledger -> classify -> decide -> write back), and polling goes on, slower, as the safety net.

Pushes (`Inbox`): Zammad's webhook and Znuny's invoker name ticket ids; a push only says "look at
ticket N now", so a duplicate or replayed push, or one for a ticket a poll already routed, writes
nothing twice. The inbox is bounded: an id already waiting is coalesced with it, and a push
that finds the inbox full is refused (429) without loss, because polling goes on at
`routing.push.poll_interval` and fetches every new ticket that a push did not route. A push can come
before the helpdesk finished writing its ticket (Znuny runs TicketCreate's invokers before the first
article exists); such an id is looked at again after `RECHECK` seconds, then left to polling.

Watches (`Watcher`): a mailbox signals new mail itself (IMAP IDLE, file events on a Maildir's new/), so
the daemon polls the moment it does. The watch fails like any helpdesk call does, under the same failure
policy (`daemon.runtime.coordinator`: logged once, backoff), and while it is down the connector is polled at its
normal `routing.poll_interval`; a server without IDLE is simply polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from connectors.base import Connector, Watch
from daemon.logging import get_logger
from daemon.runtime.coordinator import SIGNAL_RETRY, Coordinator

log = get_logger(__name__)

PushResult = Literal["accepted", "duplicate", "rejected", "invalid", "throttled", "relayed"]

RECHECK = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # waits before each new look at a not-yet-complete pushed ticket


class InboxFull(Exception):
    """No room for a pushed id; polling will route the ticket."""


@dataclass(frozen=True)
class Offered:
    """What became of a push's ids: queued now, or already waiting (coalesced)."""

    queued: int
    coalesced: int


class Inbox:
    """Pushed ids of one connector in arrival order, each at most once, with the time it arrived."""

    def __init__(self, limit: int, recheck: Sequence[float] | None = None) -> None:
        self.limit = limit
        self.recheck = tuple(RECHECK if recheck is None else recheck)
        self._waiting: OrderedDict[str, float] = OrderedDict()
        self._early: dict[str, int] = {}  # not-yet-complete ids: how many looks they have had
        self._timers: set[asyncio.TimerHandle] = set()
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

    def retry(self, ticket_id: str, received: float) -> None:
        """Put back an id whose routing failed, first in line and with its first arrival time."""
        self._waiting[ticket_id] = min(received, self._waiting.get(ticket_id, received))
        self._waiting.move_to_end(ticket_id, last=False)
        self._wake.set()

    def later(self, ticket_id: str, received: float) -> bool:
        """Look at an id again after the next `recheck` wait; False once they are used up (polling routes it)."""
        looks = self._early.get(ticket_id, 0)
        if self._closed or looks >= len(self.recheck):
            self._early.pop(ticket_id, None)
            return False
        self._early[ticket_id] = looks + 1

        def due() -> None:
            self._timers.discard(handle)
            if self._closed or ticket_id in self._waiting:
                return
            if len(self._waiting) >= self.limit:  # full: the id is left to polling, like a refused push
                self._early.pop(ticket_id, None)
                return
            self._waiting[ticket_id] = received
            self._wake.set()

        handle = asyncio.get_running_loop().call_later(self.recheck[looks], due)
        self._timers.add(handle)
        return True

    def done(self, ticket_id: str) -> None:
        """The id was routed or turned out not to be new work: forget its re-checks."""
        self._early.pop(ticket_id, None)

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
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._wake.set()


class Watcher:
    """Waits on one connector's own signal of new work and polls when it comes; `mode(True)` while it can.

    A signal is owed a poll until one succeeds: a poll the failure policy refuses or that fails is tried
    again every `RETRY` seconds (the policy lets a signalled call through that often during an outage),
    not left to the slow scheduled poll of push mode.
    """

    WAIT = 30.0  # seconds per wait: how often the loop looks up from a quiet mailbox
    RETRY = SIGNAL_RETRY  # seconds per wait while a poll is owed

    def __init__(
        self,
        name: str,
        connector: Connector,
        *,
        policy: Coordinator,
        poll: Callable[[], Awaitable[int | None]],
        mode: Callable[[bool], None],
        routed: Callable[[float], None],
    ) -> None:
        self.name = name
        self._connector = connector
        self.policy = policy
        self._poll = poll
        self._mode = mode
        self._routed = routed
        self._watch: Watch | None = None
        self._stop = asyncio.Event()
        self._owed: tuple[float, bool] | None = None  # a poll not yet done: since when, and whether a signal asked

    async def run(self) -> None:
        """Until `stop`: open the watch, poll once it is in place, then poll on every signal."""
        try:
            while not self._stop.is_set():
                if self._watch is None and not await self._open():
                    return
                if self._watch is None:
                    continue
                await self._pay()
                woke = await self.policy.run(self._watch_wait, "watch")
                if self.policy.state != "ok":  # broken: polled as usual until it is back
                    await self._drop()
                    continue
                if woke and self._owed is None:
                    self._owed = (time.monotonic(), True)
        finally:
            await self._drop()

    async def _pay(self) -> None:
        """The owed poll, if any; it stays owed when the policy refuses it or it fails."""
        if self._owed is None or self._stop.is_set():
            return
        since, signalled = self._owed
        polled = await self._poll()
        if polled is None:
            return
        self._owed = None
        if polled and signalled:
            self._routed(time.monotonic() - since)

    async def _watch_wait(self) -> bool:
        if self._watch is None:
            return False
        return await self._watch.wait(self.RETRY if self._owed is not None else self.WAIT)

    async def _open(self) -> bool:
        """Try to open the watch; False when there is nothing to wait for (no IDLE, stopped, shutting down)."""
        watch = await self.policy.run(self._connector.watch, "watch")
        if watch is not None:
            if self._stop.is_set():
                await watch.aclose()
                return False
            self._watch = watch
            self._mode(True)
            if self._owed is None:  # what arrived before the watch was in place
                self._owed = (time.monotonic(), False)
            return True
        if self.policy.state == "ok":
            log.info("helpdesk cannot signal new work; polling", connector=self.name)
            return False
        if self.policy.state == "stopped":
            return False
        with contextlib.suppress(TimeoutError):  # backing off; a stop ends the pause
            await asyncio.wait_for(self._stop.wait(), max(0.0, self.policy.not_before - time.monotonic()))
        return not self._stop.is_set()

    async def _drop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._mode(False)
            await watch.aclose()

    async def stop(self) -> None:
        """End the loop promptly: a wait under way returns at once."""
        self._stop.set()
        if self._watch is not None:
            await self._watch.aclose()
