"""Polling policy for one connector: every exception out of a job lands in exactly one failure class.

| class | raised as | policy | ready |
|---|---|---|---|
| transient | connectors.errors.TransientError | exponential backoff | yes |
| credentials | connectors.errors.AuthError | stop until the config is reloaded | no |
| configuration | ConnectorConfigError or daemon.errors.ConfigError | stop until the config is reloaded | no |
| state | daemon.errors.StateError | exponential backoff | no |
| unexpected | any other exception | backoff; logged once with its traceback | no, once it repeats |

Connectors never sleep or retry; the coordinator decides when the next call may go out, so a flaky
helpdesk costs one log line when it starts failing and one when it recovers, not one per poll. A
helpdesk that fails every few calls is one outage, not many: recovery is announced only after
`recover_after` seconds of uninterrupted success, so a flapping connector does not flood the log.
Nothing escapes to the scheduler, whose own logger would print a plain-text traceback on every poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from connectors.errors import AuthError, ConnectorConfigError, TransientError
from daemon.errors import ConfigError, StateError, TicketdError
from daemon.logging import get_logger

T = TypeVar("T")
Health = Literal["ok", "failing", "stopped"]
StopReason = Literal["credentials rejected", "configuration error"]
FailureClass = Literal["transient", "credentials", "configuration", "state", "unexpected"]
UNEXPECTED_BEFORE_NOT_READY = 2  # one odd failure may be a fluke; the second in a row is a broken connector
SIGNAL_RETRY = 5.0  # seconds: while signals keep coming during an outage, at most one call this often

_WHAT_FAILED = {
    "transient": "connector failing; backing off",
    "state": "state database failing; backing off",
    "unexpected": "unexpected error; backing off",
}


def classify(exc: BaseException) -> FailureClass:
    """The failure class of an exception (the table in this module's docstring)."""
    if isinstance(exc, AuthError):
        return "credentials"
    if isinstance(exc, ConnectorConfigError | ConfigError):
        return "configuration"
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, StateError):
        return "state"
    return "unexpected"


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
        self.failure_class: FailureClass | None = None  # of the last call, while it is not ok
        self.failures = 0  # consecutive: drives the backoff
        self.not_before = 0.0
        self.last_success: datetime | None = None
        self.last_error: str | None = None
        self.stop_reason: StopReason | None = None  # while stopped
        self._outage: dict[str, Any] | None = None  # announced and not yet over: since, failed calls
        self._failed_at = 0.0
        self._healthy_since: float | None = None

    @property
    def ready(self) -> bool:
        """False when stopped, while the state database fails, and once an unexpected error repeats."""
        if self.state == "stopped" or self.failure_class == "state":
            return False
        return not (self.failure_class == "unexpected" and self.failures >= UNEXPECTED_BEFORE_NOT_READY)

    @property
    def reason(self) -> str | None:
        """Why the connector is not ok, in words for `/readyz`: the failure class and the error."""
        if self.failure_class is None:
            return None
        return f"{self.failure_class}: {self.last_error}"

    def failing(self) -> bool:
        """The last call failed: the pipeline takes small steps until one succeeds."""
        return self.state == "failing"

    def due(self) -> bool:
        """Whether a call may go out now (not stopped, backoff elapsed)."""
        return self.state != "stopped" and self._clock() >= self.not_before

    def next_delay(self) -> float:
        """Exponential backoff: base, 2x base, 4x base ... capped at max_delay."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(self.failures - 1, 0)))

    def signalled(self) -> None:
        """The helpdesk just announced new work (a push, new mail), so it is likely up: a transient backoff
        ends early, but no sooner than SIGNAL_RETRY seconds after the last failed call."""
        if self.state == "failing" and self.failure_class == "transient":
            self.not_before = min(self.not_before, self._failed_at + SIGNAL_RETRY)

    async def run(self, job: Callable[[], Awaitable[T]], what: str = "poll") -> T | None:
        """Run `job` unless backing off or stopped; every failure becomes state, never an exception."""
        if not self.due():
            return None
        try:
            result = await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind == "credentials":
                self._stop("credentials rejected", exc, what)
            elif kind == "configuration":  # the same call would fail the same way until the config changes
                self._stop("configuration error", exc, what)
            else:
                self._failed(kind, exc, what)
            return None
        self._succeeded(what)
        return result

    def _stop(self, reason: StopReason, exc: Exception, what: str) -> None:
        already = self.state == "stopped"  # a concurrent job of the same connector got there first
        self.state = "stopped"
        self.stop_reason = reason
        self.failure_class = "credentials" if reason == "credentials rejected" else "configuration"
        self.last_error = str(exc)
        if not already:
            self._log.error(
                f"connector {reason}; polling stopped until the config is fixed and reloaded",
                connector=self.name,
                job=what,
                error=str(exc),
            )

    def _failed(self, kind: FailureClass, exc: Exception, what: str) -> None:
        now = self._clock()
        self._failed_at = now
        self.failures += 1
        delay = self.next_delay()
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = min(self.max_delay, max(delay, exc.retry_after))
        self.not_before = now + delay
        self.last_error = str(exc) or type(exc).__name__
        self.state = "failing"
        self._healthy_since = None
        self.failure_class = kind
        if self._outage is None or self._outage["class"] != kind:  # a new outage, or it changed its nature
            if self._outage is None:
                self._outage = {"since": now, "failed_calls": 0}
            self._outage["class"] = kind
            self._outage["failed_calls"] += 1
            fields: dict[str, Any] = {"connector": self.name, "job": what, "error": self.last_error, "retry_in": delay}
            if kind == "unexpected":  # a bug, not weather: its traceback, once, as a field of the JSON event
                # ticketd's own errors (a model that cannot load, ...) say what is wrong; a traceback adds nothing.
                trace = {} if isinstance(exc, TicketdError) else {"exc_info": exc}
                self._log.error(_WHAT_FAILED[kind], error_type=type(exc).__name__, **trace, **fields)
            else:
                self._log.warning(_WHAT_FAILED[kind], **fields)
        else:
            self._outage["failed_calls"] += 1
            self._log.debug(
                "connector still failing", connector=self.name, job=what, error=self.last_error, retry_in=delay
            )

    def _succeeded(self, what: str) -> None:
        now = self._clock()
        self.state = "ok"
        self.failure_class = None
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
