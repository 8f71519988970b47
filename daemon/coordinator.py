"""Polling policy for one connector: back off on TransientError, stop on AuthError and ConfigError, log once.

Connectors never sleep or retry; the coordinator decides when the next call may go out, so a flaky
helpdesk costs one log line when it starts failing and one when it recovers, not one per poll. A
helpdesk that fails every few calls is one outage, not many: recovery is announced only after
`recover_after` seconds of uninterrupted success, so a flapping connector does not flood the log.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from connectors.errors import AuthError, ConfigError, TransientError
from daemon.logging import get_logger

T = TypeVar("T")
Health = Literal["ok", "failing", "stopped"]
StopReason = Literal["credentials rejected", "configuration error"]


class Coordinator:
    """One per connector; every scheduled job for that connector runs through `run`."""

    def __init__(
        self,
        name: str,
        *,
        base_delay: float = 30.0,
        max_delay: float = 900.0,
        recover_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max(max_delay, base_delay)
        self.recover_after = recover_after
        self._clock = clock
        self._log = log if log is not None else get_logger(__name__)
        self.state: Health = "ok"
        self.failures = 0  # consecutive: drives the backoff
        self.not_before = 0.0
        self.last_success: datetime | None = None
        self.last_error: str | None = None
        self.stop_reason: StopReason | None = None  # while stopped
        self._outage: dict[str, Any] | None = None  # announced and not yet over: since, failed calls
        self._healthy_since: float | None = None

    @property
    def ready(self) -> bool:
        """False once credentials or configuration were rejected: not ready until they are fixed."""
        return self.state != "stopped"

    def failing(self) -> bool:
        """The last call failed: the pipeline takes small steps until one succeeds."""
        return self.state == "failing"

    def due(self) -> bool:
        """Whether a call may go out now (not stopped, backoff elapsed)."""
        return self.state != "stopped" and self._clock() >= self.not_before

    def next_delay(self) -> float:
        """Exponential backoff: base, 2x base, 4x base ... capped at max_delay."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(self.failures - 1, 0)))

    async def run(self, job: Callable[[], Awaitable[T]], what: str = "poll") -> T | None:
        """Run `job` unless backing off or stopped; connector errors become state, never exceptions."""
        if not self.due():
            return None
        try:
            result = await job()
        except AuthError as exc:
            self._stop("credentials rejected", exc, what)
            return None
        except ConfigError as exc:  # the same call would fail the same way until the config changes
            self._stop("configuration error", exc, what)
            return None
        except TransientError as exc:
            self._failed(exc, what)
            return None
        self._succeeded(what)
        return result

    def _stop(self, reason: StopReason, exc: Exception, what: str) -> None:
        already = self.state == "stopped"  # a concurrent job of the same connector got there first
        self.state = "stopped"
        self.stop_reason = reason
        self.last_error = str(exc)
        if not already:
            self._log.error(
                f"connector {reason}; polling stopped until the config is fixed and reloaded",
                connector=self.name,
                job=what,
                error=str(exc),
            )

    def _failed(self, exc: TransientError, what: str) -> None:
        now = self._clock()
        self.failures += 1
        delay = self.next_delay()
        if exc.retry_after is not None:
            delay = min(self.max_delay, max(delay, exc.retry_after))
        self.not_before = now + delay
        self.last_error = str(exc)
        self.state = "failing"
        self._healthy_since = None
        if self._outage is None:
            self._outage = {"since": now, "failed_calls": 1}
            self._log.warning(
                "connector failing; backing off", connector=self.name, job=what, error=str(exc), retry_in=delay
            )
        else:
            self._outage["failed_calls"] += 1
            self._log.debug("connector still failing", connector=self.name, job=what, error=str(exc), retry_in=delay)

    def _succeeded(self, what: str) -> None:
        now = self._clock()
        self.state = "ok"
        self.failures = 0
        self.not_before = 0.0
        self.last_success = datetime.now(UTC)
        if self._outage is None:
            return
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since >= self.recover_after:
            self._log.info(
                "connector recovered",
                connector=self.name,
                job=what,
                failed_attempts=self._outage["failed_calls"],
                outage_s=round(self._healthy_since - self._outage["since"], 1),
            )
            self._outage = None
            self._healthy_since = None
