"""Several replicas on one PostgreSQL: each connector is owned by one replica at a time, and fenced.

Every replica runs the same config. Leadership keeps this replica's share of the leases
(daemon/state/leases.py): one per connector, plus `SCHEDULER` for the jobs that must run once
(retention, the retrain cron). Each renewal it says it is alive, renews what it holds, gives up a lease
beyond its share (so a replica that joins gets work) and takes free ones up to its share. A lease is
free when released, expired (its owner stopped renewing: paused, cut off) or when its owner's session
is gone (crashed: the advisory lock it took for its epoch is free). Only the owner polls, harvests,
watches and writes back a connector; every such write carries the owner's `Fence`, so a former
owner's write is refused by the database (`Fenced`), however long it was paused.

With SQLite there is no Leadership: one process owns everything, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx

from daemon.errors import StateError
from daemon.logging import get_logger
from daemon.state import State
from daemon.state import leases as leasing
from daemon.state.leases import Fence

log = get_logger(__name__)

SCHEDULER = "~scheduler"  # retention and the retrain cron run on the replica that holds this
RELAY = "ticketd_push"  # NOTIFY channel: a push that reached a replica not owning its connector, to the owner


def default_replica_id() -> str:
    """Host name and process id: a pod's name in Kubernetes, unique per process elsewhere."""
    return f"{socket.gethostname()}-{os.getpid()}"


# httpcore's trace events just before a part of a request is written to the socket. Headers and body go
# out in separate writes with a turn of the event loop between them, so a pause after the headers would
# otherwise let the body (and so the whole request) reach the helpdesk after another replica took over.
WRITES = ("http11.send_request_headers.started", "http11.send_request_body.started")


def last_check(check: Callable[[], object]) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook: `check` (raising Fenced) runs as each part of a write is about to leave.

    A request that changes the helpdesk is stopped if this replica lost the connector or stalled since
    its last check; stopped before its body, the server gets an incomplete request and acts on nothing.
    """

    async def hook(request: httpx.Request) -> None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        inner = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event in WRITES:
                check()
            if inner is not None:
                await inner(event, info)

        request.extensions = {**request.extensions, "trace": trace}

    return hook


class Leadership:
    """This replica's leases: renewed, spread across the replicas alive, taken over from dead owners."""

    def __init__(
        self,
        state: State,
        replica: str,
        names: Sequence[str],
        *,
        ttl: float,
        renew: float,
        on_change: Callable[[str, bool], None],
        busy: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self.state = state
        self.replica = replica
        self.names = list(dict.fromkeys(names))
        self.ttl = ttl
        self.renew = renew
        self.reachable = True  # the database answered the last renewal
        self.alive = 1
        self._on_change = on_change
        self._busy = busy  # whether a job of that connector is still running (a lease is handed over only idle)
        self._draining: dict[str, Fence] = {}  # handed over: no new work here, released once the last job ended
        self._held: dict[str, Fence] = {}
        self._locked: dict[str, int] = {}  # lease -> the epoch whose advisory lock this replica's session holds
        self._mutex = threading.Lock()  # _held is read on the event loop and renewed in a worker thread
        self._renewed: dict[str, float] = {}  # lease -> monotonic time its last successful renewal started
        self._session: contextlib.ExitStack | None = None
        self._conn: Any = None
        self._stop = asyncio.Event()
        self._stopped = threading.Event()  # the same, for the relay's listening thread

    # -- what the daemon asks ---------------------------------------------------------------------------------

    def fence(self, name: str) -> Fence | None:
        with self._mutex:
            return self._held.get(name)

    def stale(self, name: str) -> float | None:
        """Seconds since the lease was last renewed, if that is more than half of it (the process stalled)."""
        with self._mutex:
            renewed = self._renewed.get(name)
        age = time.monotonic() - renewed if renewed is not None else None
        return age if age is not None and age > self.ttl / 2 else None

    def owns(self, name: str) -> bool:
        return self.fence(name) is not None

    def held(self) -> list[str]:
        with self._mutex:
            return sorted(self._held)

    def fenced(self, name: str, why: str) -> None:
        """A write was refused: another replica took the lease over before this one's renewal noticed."""
        with self._mutex:
            fence = self._held.pop(name, None)
        if fence is not None:
            log.info("lease lost: another replica owns it now", lease=name, epoch=fence.epoch, why=why)
            self._on_change(name, False)

    # -- the loop -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Renew and balance every `renew` seconds until `stop`; changes are applied on the event loop."""
        while not self._stop.is_set():
            changes = await anyio.to_thread.run_sync(self._tick)
            for name, gained in changes:
                self._on_change(name, gained)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.renew)

    async def stop(self) -> None:
        """Give every lease back at once (a clean stop: the next owner need not wait for them to expire)."""
        self._stop.set()
        self._stopped.set()
        await anyio.to_thread.run_sync(self._release_all)

    def _release_all(self) -> None:
        with self._mutex:
            held, self._held = {**self._held, **self._draining}, {}
            self._draining = {}
        try:
            for fence in held.values():
                self.state.lease_release(fence)
            self.state.replica_gone(self.replica)
        except StateError as exc:
            log.warning("leases not released; they expire on their own", error=str(exc))
        self._close_session()

    # -- pushes that reached another replica ------------------------------------------------------------------

    def relay(self, name: str, ticket_ids: Sequence[str]) -> None:
        """Hand a verified push to whichever replica owns `name` (PostgreSQL NOTIFY; lost only if none listens)."""
        self.state.notify(RELAY, json.dumps({"connector": name, "ids": list(ticket_ids)}))

    async def listen(self, deliver: Callable[[str, list[str]], None]) -> None:
        """Until `stop`: pushes relayed by other replicas, handed to `deliver` on the event loop."""
        loop = asyncio.get_running_loop()
        await anyio.to_thread.run_sync(self._listen, loop, deliver, abandon_on_cancel=True)

    def _listen(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[str, list[str]], None]) -> None:
        while not self._stopped.is_set():
            try:
                with self.state.session() as conn:
                    raw: Any = conn.connection.driver_connection  # psycopg's own connection: LISTEN, notifies
                    raw.execute(f"LISTEN {RELAY}")
                    while not self._stopped.is_set():
                        for note in raw.notifies(timeout=1.0):
                            push = json.loads(note.payload)
                            loop.call_soon_threadsafe(deliver, str(push["connector"]), [str(i) for i in push["ids"]])
            except Exception as exc:  # the database went away: listen again once it is back; polling covers it
                log.debug("push relay not listening; trying again", error=str(exc))
                self._stopped.wait(2.0)

    # -- one renewal, in a worker thread ------------------------------------------------------------------------

    def renew_now(self) -> list[tuple[str, bool]]:
        """One renewal outside the loop (`ticketd run --once`): the changes, for the caller to apply."""
        return self._tick()

    def _tick(self) -> list[tuple[str, bool]]:
        changes: list[tuple[str, bool]] = []
        try:
            conn = self._connection()
            self.alive = self.state.replica_beat(self.replica, self.ttl)
            changes += self._renew_held(conn)
            share = math.ceil(len(self.names) / max(self.alive, 1))
            changes += self._give_surplus(conn, share)
            changes += self._take_free(conn, share)
        except StateError as exc:
            changes += self._unreachable(exc)
            return changes
        if not self.reachable:
            self.reachable = True
            log.info("state database reachable again; taking leases", replica=self.replica)
        return changes

    def _connection(self) -> Any:
        if self._conn is None:
            stack = contextlib.ExitStack()
            self._conn = stack.enter_context(self.state.session())
            self._session = stack
        return self._conn

    def _close_session(self) -> None:
        session, self._session, self._conn = self._session, None, None
        self._locked.clear()
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def _renew_held(self, conn: Any) -> list[tuple[str, bool]]:
        lost: list[tuple[str, bool]] = []
        for name, fence in list(self._draining.items()):
            if not self.state.lease_renew(fence, self.ttl):
                self._draining.pop(name)
                self._forget(name, conn)
        for name, fence in list(self._snapshot().items()):
            started = time.monotonic()
            if self.state.lease_renew(fence, self.ttl):
                with self._mutex:
                    self._renewed[name] = started
                continue
            self._forget(name, conn)
            log.info("lease lost: another replica owns it now", lease=name, epoch=fence.epoch, why="renewal refused")
            lost.append((name, False))
        return lost

    def _give_surplus(self, conn: Any, share: int) -> list[tuple[str, bool]]:
        """Hand a lease over in two steps: no new work here at once, the release once its last job ended.

        Released mid-write, the next owner would replay the pending write-back while this one still sends it.
        """
        for name, fence in list(self._draining.items()):
            if not self._busy(name):
                self._draining.pop(name)
                self.state.lease_release(fence)
                self._forget(name, conn)
                log.info("lease handed over: more replicas are alive", lease=name, alive=self.alive, share=share)
        held = self._snapshot()
        if len(held) <= share or self._draining:
            return []
        surplus = max((n for n in held if n != SCHEDULER), key=lambda n: held[n].epoch, default=None)
        if surplus is None:
            return []
        with self._mutex:
            self._draining[surplus] = self._held.pop(surplus)
        return [(surplus, False)]

    def _take_free(self, conn: Any, share: int) -> list[tuple[str, bool]]:
        gained: list[tuple[str, bool]] = []
        held = set(self._snapshot())
        current = {lease.name: lease for lease in self.state.leases()}
        with self._mutex:
            draining = set(self._draining)
        for name in self.names:
            if name in held or name in draining:  # a lease being handed over is still ours: never "orphaned"
                continue
            lease = current.get(name)
            seen = lease.epoch if lease is not None else 0
            orphaned = lease is not None and lease.owner is not None  # had an owner that may be dead
            if len(held) >= share and not orphaned:
                continue  # a free lease goes to a replica below its share
            free = lease is None or lease.owner is None or lease.expired
            gone = False
            if not free and leasing.try_lock(conn, name, seen):  # nobody holds the owner's lock: its session ended
                leasing.unlock(conn, name, seen)
                gone = True
            if not (free or gone):
                continue
            # The next epoch's lock first: once the new epoch is visible, its owner's session provably holds it.
            if not leasing.try_lock(conn, name, seen + 1):
                continue  # another replica is taking it right now
            started = time.monotonic()
            fence = self.state.lease_take(name, self.replica, self.ttl, seen=seen, force=gone)
            if fence is None:
                leasing.unlock(conn, name, seen + 1)
                continue
            self._locked[name] = fence.epoch
            with self._mutex:
                self._held[name] = fence
                self._renewed[name] = started
            held.add(name)
            why = "free" if lease is None or lease.owner is None else "expired" if lease.expired else "owner gone"
            log.info("lease taken: this replica owns it now", lease=name, epoch=fence.epoch, why=why)
            gained.append((name, True))
        return gained

    def _unreachable(self, exc: StateError) -> list[tuple[str, bool]]:
        """No database: nothing can be fenced, so nothing is owned until it answers again."""
        with self._mutex:
            held, self._held = self._held, {}
            self._draining = {}
        self._close_session()
        if self.reachable:
            self.reachable = False
            log.warning("state database unreachable; leases given up until it answers", error=str(exc))
        return [(name, False) for name in held]

    def _forget(self, name: str, conn: Any) -> None:
        with self._mutex:
            self._held.pop(name, None)
        epoch = self._locked.pop(name, None)
        if epoch is not None:
            leasing.unlock(conn, name, epoch)

    def _snapshot(self) -> dict[str, Fence]:
        with self._mutex:
            return dict(self._held)
