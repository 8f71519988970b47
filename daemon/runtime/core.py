"""What every part of the running daemon shares: its config, state, model, stacks, and who owns which connector."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from daemon.config import Config
from daemon.errors import Fenced, TicketdError
from daemon.logging import get_logger
from daemon.metrics import Metrics
from daemon.runtime.leadership import Leadership
from daemon.runtime.stacks import ConnectorStack
from daemon.runtime.wiring import model_holder
from daemon.state import State
from daemon.state.leases import Fence
from daemon.training.lock import Retraining

log = get_logger(__name__)


class HostedApi(Protocol):
    """The REST API as the daemon runs it (daemon.web.hosting): started after the daemon, stopped first."""

    port: int | None

    async def stop(self) -> None: ...

    def reconfigure(self, config: Config) -> None:
        """A reloaded config's tokens, public_classify and retrain policy apply to the next request."""


class Core:
    """The daemon's shared parts; the lifecycle, the scheduler's jobs and the push intake build on them."""

    def __init__(self, config: Config, *, config_path: Path | None = None, dry_run: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.dry_run = dry_run
        self.state: State | None = None
        self.model = model_holder(config)
        self.metrics = Metrics()
        self.api: HostedApi | None = None  # the REST API in this process (daemon.web.hosting), or none
        self.stacks: dict[str, ConnectorStack] = {}
        self._scheduler: Any = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self._reload_requested = False
        self.retraining = Retraining()  # one training at a time, the cron's and the API's
        self._retrain_task: asyncio.Task[Any] | None = None
        self._below_target: set[tuple[str, str, str]] = set()  # (connector, label, class or "": the pool) flagged
        self.leadership: Leadership | None = None  # several replicas on PostgreSQL: who owns which connector
        self._leading: asyncio.Task[None] | None = None

    def owns(self, name: str) -> bool:
        """Whether this replica runs connector `name` (or, for SCHEDULER, the once-only jobs) now."""
        return self.leadership is None or self.leadership.owns(name)

    def _fence(self, name: str) -> Fence | None:
        """The owner's proof for a write; Fenced once this replica no longer owns `name` (None: one process)."""
        if self.leadership is None:
            return None
        fence = self.leadership.fence(name)
        if fence is None:
            raise Fenced(f"lease {name!r}: not held by {self.leadership.replica} any more")
        stale = self.leadership.stale(name)
        if stale is not None:  # paused or cut off: another replica may own it by now, whatever the lease row says
            raise Fenced(f"lease {name!r}: not renewed for {stale:.1f} s; this replica stalled")
        return fence

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _tracked(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """Register the running task so shutdown can wait for the ticket in flight."""

        async def run() -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                return await fn()
            except TicketdError as exc:
                log.error("job failed", error=str(exc))
                return None
            except Exception as exc:  # never to the scheduler's own logger: one JSON event with the traceback
                log.error("job failed unexpectedly", error=str(exc), error_type=type(exc).__name__, exc_info=exc)
                return None
            finally:
                if task is not None:
                    self._inflight.discard(task)

        return run

    def _lost(self, name: str, exc: Fenced) -> int:
        """A fenced write was refused: this replica no longer owns the connector; the job ends quietly."""
        if self.leadership is not None:
            self.leadership.fenced(name, str(exc))
        return 0
