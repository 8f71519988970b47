"""Connector stacks: per configured connector, its HTTP client, connector, failure policy, pipeline and push intake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from connectors.base import Connector
from connectors.registry import connector_class
from daemon.config import Config, ConnectorEntry
from daemon.errors import ConfigError
from daemon.metrics import Metrics
from daemon.ml.serving import ModelHolder
from daemon.pipeline.flow import Pipeline
from daemon.pipeline.privacy import Scrubber
from daemon.pipeline.routing import label_rules
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.leadership import last_check
from daemon.runtime.push import Inbox, Watcher
from daemon.state import LedgerEntry, State, TrainingRow
from daemon.state.leases import Fence


@dataclass
class ConnectorStack:
    """One configured connector and what runs it: its HTTP client, coordinator (polling policy) and pipeline."""

    entry: ConnectorEntry
    connector: Connector
    coordinator: Coordinator
    pipeline: Pipeline
    client: httpx.AsyncClient  # its own timeouts; closed with the connector
    inbox: Inbox | None = None  # pushed ids waiting, while `routing.push` is on (webhooks, invokers)
    watcher: Watcher | None = None  # the mailbox's own signal of new mail, while `routing.push` is on
    # Polls and pushed tickets of one connector take turns for its lanes: one conversation with the helpdesk
    # at a time, two where the connector declares `concurrent_apply` (a burst of pushes then overlaps).
    lanes: int = 1
    lock: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    active: int = 0  # pushed tickets being routed now
    jobs: int = 0  # polls, harvests and pushed tickets running now (a lease is handed over only at 0)
    drain: asyncio.Task[None] | None = None  # routes the inbox's ids, or runs the watcher
    pushing: bool = False  # the helpdesk announces new work now, so polling runs at routing.push.poll_interval

    @property
    def poll_interval(self) -> float:
        """Seconds between polls: slower while the helpdesk announces new work itself."""
        routing = self.entry.routing
        return routing.push.poll_interval if self.pushing else routing.poll_interval


@dataclass(frozen=True)
class Builder:
    """What every stack of one config is made with: the daemon's state, model, metrics and ownership checks."""

    config: Config
    state: State
    model: ModelHolder
    metrics: Metrics
    dry_run: bool
    fence: Callable[[str], Fence | None]
    stopping: Callable[[], bool]
    watcher: Callable[[ConnectorStack], Watcher]

    async def build(self) -> dict[str, ConnectorStack]:
        """Every configured connector's stack; on any error the ones already made are closed before it propagates."""
        stacks: dict[str, ConnectorStack] = {}
        try:
            for entry in self.config.connectors:
                stacks[entry.name] = await self._stack(entry)
        except BaseException:
            await close(stacks)
            raise
        return stacks

    async def _stack(self, entry: ConnectorEntry) -> ConnectorStack:
        config, state, model, metrics, fence = self.config, self.state, self.model, self.metrics, self.fence
        routing = entry.routing
        timeout = routing.timeout
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            event_hooks={"request": [last_check(lambda name=entry.name: fence(name))]},  # type: ignore[misc]
        )
        try:
            connector = connector_class(entry.type).from_config(entry.connection, client)
        except BaseException:
            await client.aclose()
            raise
        coordinator = Coordinator(
            entry.name,
            base_delay=max(routing.poll_interval, 1.0),
            max_delay=routing.max_backoff,
            recover_after=routing.recover_after,
        )
        pipeline = Pipeline(
            entry.name,
            connector,
            state,
            model.get,
            label_rules(entry),
            mode="shadow" if self.dry_run else routing.mode,
            note=routing.note,
            batch_limit=routing.batch_limit,
            include_ticket_text=config.log.include_ticket_text,
            entry_factory=LedgerEntry,
            row_factory=TrainingRow,
            stopping=self.stopping,
            degraded=coordinator.failing,
            metrics=metrics,
            fence=lambda name=entry.name: fence(name),  # type: ignore[misc]
            scrub=Scrubber.configured(config.privacy).scrub if config.privacy.scrub else None,
        )
        lanes = 2 if connector.concurrent_apply else 1
        stack = ConnectorStack(
            entry, connector, coordinator, pipeline, client, lanes=lanes, lock=asyncio.Semaphore(lanes)
        )
        try:
            if routing.push.enabled:
                if connector.accepts_push():
                    if not config.api.enabled:
                        raise ConfigError(
                            f"connectors.{entry.name}.routing.push.enabled: pushes arrive at the API "
                            f"(POST /api/v1/hooks/{entry.name}); set api.enabled: true"
                        )
                    stack.inbox = Inbox(routing.push.queue_limit)
                    stack.pushing = True
                elif connector.offers_watch():
                    stack.watcher = self.watcher(stack)
                else:
                    key = connector.push_secret_key
                    how = f"set connection.{key}" if key else f"the {entry.type} connector takes no pushes"
                    raise ConfigError(f"connectors.{entry.name}.routing.push.enabled: {how}")
        except BaseException:
            await close({entry.name: stack})
            raise
        metrics.push_mode.labels(entry.name).set(int(stack.pushing))
        return stack


async def close(stacks: dict[str, ConnectorStack]) -> None:
    """Close every connector and its HTTP client."""
    for stack in stacks.values():
        await stack.connector.aclose()
        await stack.client.aclose()
