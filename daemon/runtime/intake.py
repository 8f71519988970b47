"""Push intake: pushed ids verified, queued, relayed to the owning replica and drained; watched mailboxes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from connectors.errors import NotReady, PushRejected
from daemon.errors import Fenced, TicketdError
from daemon.logging import get_logger
from daemon.runtime.core import Core
from daemon.runtime.push import InboxFull, PushResult
from daemon.runtime.stacks import ConnectorStack

log = get_logger(__name__)


@dataclass(frozen=True)
class PushReply:
    """What became of one push: the result (a metric label; the API answers it, daemon.web.api.hooks) and why."""

    result: PushResult | Literal["unknown"]
    message: str
    queued: int = 0


class PushIntake(Core):
    """New work announced by the helpdesk: one path on, through the connector's pipeline and failure policy."""

    def receive_push(self, name: str, headers: Mapping[str, str], body: bytes) -> PushReply:
        """One push request (`POST /api/v1/hooks/<name>`): verified by the connector, its ids queued for routing."""
        worker = self.stacks.get(name)
        if worker is None or worker.inbox is None:
            return PushReply("unknown", f"no connector {name!r} takes pushes (routing.push.enabled)")
        try:
            push = worker.connector.read_push(headers, body)
        except PushRejected as exc:  # logged, with the client's address, by the API's throttle
            return self._push_reply(name, PushReply("rejected", str(exc)))
        except ValueError as exc:
            return self._push_reply(name, PushReply("invalid", str(exc)))
        if self.leadership is not None and not self.owns(name):  # another replica routes this connector
            self._track(asyncio.create_task(self._relay(name, push.ticket_ids)))
            return self._push_reply(name, PushReply("relayed", "relayed to the replica that owns it", 0))
        try:
            offered = worker.inbox.offer(push.ticket_ids)
        except InboxFull as exc:
            return self._push_reply(name, PushReply("throttled", f"{exc}; polling will route them"))
        result: PushResult = "accepted" if offered.queued else "duplicate"
        log.debug("push received", connector=name, tickets=list(push.ticket_ids), delivery=push.delivery)
        message = "queued" if offered.queued else "already waiting"
        return self._push_reply(name, PushReply(result, message, offered.queued))

    async def _relay(self, name: str, ticket_ids: Sequence[str]) -> None:
        assert self.leadership is not None
        try:
            await anyio.to_thread.run_sync(self.leadership.relay, name, ticket_ids)
        except TicketdError as exc:  # the owner's poll routes them
            log.warning("push not relayed to the owning replica", connector=name, error=str(exc))

    def _relayed(self, name: str, ticket_ids: list[str]) -> None:
        """A push another replica received for a connector this one owns."""
        worker = self.stacks.get(name)
        if worker is None or worker.inbox is None or not self.owns(name) or self._stopping:
            return
        with contextlib.suppress(InboxFull):  # the poll routes them
            worker.inbox.offer(ticket_ids)

    def _push_reply(self, name: str, reply: PushReply) -> PushReply:
        self.metrics.push(name, reply.result)
        return reply

    async def _drain(self, worker: ConnectorStack) -> None:
        """Route pushed ids, one per lane at a time, through the connector's pipeline and failure policy."""
        await asyncio.gather(*(self._drain_lane(worker) for _ in range(worker.lanes)))

    async def _drain_lane(self, worker: ConnectorStack) -> None:
        assert worker.inbox is not None
        name, coordinator = worker.entry.name, worker.coordinator
        while not self._stopping:
            item = await worker.inbox.take()
            if item is None:
                return
            ticket_id, received = item
            if not self.owns(name):  # the lease went meanwhile: the new owner's poll routes it
                continue

            early: list[NotReady] = []

            async def route(tid: str = ticket_id, found: list[NotReady] = early) -> int:
                async with worker.lock:
                    worker.active += 1
                    try:
                        return await worker.pipeline.route_pushed(tid)
                    except NotReady as exc:  # announced before it was written: not a failure of the helpdesk
                        found.append(exc)
                        return 0
                    except Fenced as exc:
                        return self._lost(name, exc)
                    finally:
                        worker.active -= 1

            coordinator.signalled()
            # During a transient outage the id waits for the next call the policy allows (a push ends the
            # backoff SIGNAL_RETRY s after the last failure) instead of for the slow poll.
            while not self._stopping and coordinator.state == "failing" and not coordinator.due():
                await asyncio.sleep(min(1.0, max(0.05, coordinator.not_before - time.monotonic())))
            worker.jobs += 1
            try:
                routed = await self._tracked(lambda: coordinator.run(route, "push"))()
            finally:
                worker.jobs -= 1
            if routed is None and coordinator.state == "failing" and not self._stopping:
                worker.inbox.retry(ticket_id, received)  # tried again once the policy allows; a stop leaves it
            elif early:
                if worker.inbox.later(ticket_id, received):
                    self.metrics.push_recheck(name)
                    log.debug("pushed ticket not complete yet; looking again soon", connector=name, ticket_id=ticket_id)
                else:
                    log.info("pushed ticket still not complete; left to polling", connector=name, ticket_id=ticket_id)
            else:
                worker.inbox.done(ticket_id)
            if routed:
                self.metrics.pushed_routed(name, time.monotonic() - received)
            self.metrics.connector_health(name, worker.coordinator.ready, worker.coordinator.failure_class)
