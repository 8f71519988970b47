"""The connector contract: the only surface the daemon sees of a helpdesk.

Connectors translate; they never sleep, retry, schedule or classify. Retry and backoff policy
belongs to the daemon's coordinator, which reacts to the error classes in `connectors.errors`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from connectors import secrets
from connectors.errors import ConnectorConfigError, PushRejected


@dataclass(frozen=True)
class Ticket:
    """A helpdesk ticket as the classifier sees it; `body` is the first customer message as plain text."""

    id: str
    number: str
    subject: str
    body: str
    created_at: datetime
    queue: str
    priority: str | None = None
    language: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Page:
    """One page of tickets and the opaque cursor to pass back for the next page."""

    tickets: list[Ticket]
    cursor: str | None
    more: bool = False


@dataclass(frozen=True)
class Named:
    """One entry of the live taxonomy (a queue, group, folder or priority)."""

    id: str
    name: str


Label = Literal["queue", "priority"]
WRITABLE: tuple[Label, ...] = ("queue", "priority")  # the model labels a connector writes back (TicketUpdate's fields)


@dataclass(frozen=True)
class TicketUpdate:
    """What to write back; `expected_queue` guards against overriding a human who moved it first."""

    ticket_id: str
    expected_queue: str
    queue: str | None = None
    priority: str | None = None
    note: str | None = None
    # The daemon's last word before the helpdesk is written (a replica still owns the connector): awaited
    # right before each write request; what it raises stops the write and propagates.
    guard: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)

    async def guarded(self) -> None:
        """Run the guard, if any, immediately before a write; connectors call this, never skip it."""
        if self.guard is not None:
            await self.guard()


@dataclass(frozen=True)
class Applied:
    """The helpdesk now holds the update; `changed` lists what actually had to change."""

    ticket_id: str
    changed: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Skipped:
    """Nothing was written, on purpose."""

    ticket_id: str
    reason: str


Outcome = Applied | Skipped


@dataclass(frozen=True)
class Push:
    """One verified push from the helpdesk: the tickets it names and its delivery id (for logs), if any."""

    ticket_ids: tuple[str, ...]
    delivery: str | None = None


class Watch(abc.ABC):
    """An open wait for new work that the helpdesk signals itself (IMAP IDLE, file-system events).

    The daemon owns the loop: it calls `wait` again and again and polls when it returns True. A watch
    never sleeps longer than it is asked to, never retries and never fetches tickets; a failure is raised
    as a connector error (TransientError, AuthError, ConnectorConfigError) and the daemon decides what happens next.
    """

    @abc.abstractmethod
    async def wait(self, timeout: float) -> bool:
        """True as soon as new work may have arrived (a poll finds it), False after `timeout` seconds without."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """End the watch promptly, also while a `wait` is under way (it then returns False)."""


class ConnectorConfig(BaseModel):
    """Base for connector configs: unknown keys rejected, secrets resolved by `connectors.secrets`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        files = {name: False for name, info in cls.model_fields.items() if "SecretStr" in str(info.annotation)}
        resolved, problems = secrets.resolve(data, files)
        if problems:
            raise ValueError(str(problems[0]))
        return resolved


def secret(value: SecretStr | None) -> str:
    """The plain secret, only at the moment it goes on the wire."""
    return value.get_secret_value() if value is not None else ""


class Connector(abc.ABC):
    """One helpdesk. Async; an HTTP connector gets its `httpx.AsyncClient` from the caller."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    # False where "closed" only means "filed in a queue folder" (IMAP, Maildir): there ticketd's own
    # moves look like closed tickets, and the daemon must not learn from its own predictions.
    closed_means_confirmed: ClassVar[bool] = True
    # True where two `apply` calls for different tickets may run at the same time (a stateless HTTP API).
    # False where the connector holds one conversation at a time (an IMAP connection), or nobody checked.
    concurrent_apply: ClassVar[bool] = False
    # Labels whose live names the helpdesk cannot list, so they come from this key of the connector's config
    # (Znuny: `queues`, `priorities`): `ticketd check` then names that key, not the label map, when one is missing.
    names_from_config: ClassVar[dict[str, str]] = {}
    # The connection key whose secret verifies pushes (`read_push`); None where the helpdesk cannot push.
    push_secret_key: ClassVar[str | None] = None

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: ConnectorConfig, client: httpx.AsyncClient) -> Connector:
        """Build from a validated config; `client` carries timeouts, TLS and proxies chosen by the daemon."""

    @abc.abstractmethod
    async def check(self) -> str | None:
        """Raise AuthError, ConnectorConfigError or TransientError unless the helpdesk accepts us now; return what
        `ticketd check` should print about what was found (e.g. a web-service layout), or None."""

    @abc.abstractmethod
    async def list_queues(self) -> list[Named]:
        """Queues (groups, folders) tickets can be routed to."""

    @abc.abstractmethod
    async def list_priorities(self) -> list[Named]:
        """Priorities tickets can be given."""

    @abc.abstractmethod
    async def fetch_new(self, cursor: str | None, limit: int) -> Page:
        """Tickets that arrived in the inbound queue(s) after `cursor` (None: from the beginning)."""

    @abc.abstractmethod
    async def fetch_closed(self, since: str | None, limit: int) -> Page:
        """Closed tickets with their final queue and priority, after the cursor `since`."""

    @abc.abstractmethod
    async def apply(self, update: TicketUpdate) -> Outcome:
        """Write queue/priority/note; idempotent, and Skipped if the ticket left `expected_queue`."""

    def accepts_push(self) -> bool:
        """Whether this connector is configured to verify pushes (a webhook secret, an invoker token)."""
        return False

    def read_push(self, headers: Mapping[str, str], body: bytes) -> Push:
        """Verify one push request and name its tickets; PushRejected unless it is from the helpdesk.

        `headers` are looked up by lower-case name; a verified body that names no ticket raises ValueError.
        """
        raise PushRejected("this connector takes no pushes")

    async def fetch_ticket(self, ticket_id: str) -> Ticket | None:
        """One ticket by id if it is still new work in an inbound queue (a pushed id); None otherwise.

        NotReady where the helpdesk announced the ticket before it finished writing it (no article yet).
        """
        raise NotImplementedError(f"{self.type_name} cannot fetch one ticket by id")

    def offers_watch(self) -> bool:
        """Whether this helpdesk can signal new work itself (`watch` is overridden)."""
        return type(self).watch is not Connector.watch

    async def watch(self) -> Watch | None:
        """Start waiting for new work in the inbound queue(s); None where the helpdesk cannot signal it.

        Helpdesks that push over HTTP (webhooks, invokers) return None here and use `read_push` instead.
        """
        return None

    def ticket_url(self, ticket_id: str) -> str | None:
        """Where an agent opens the ticket in the helpdesk's own UI (the dashboard links it); None if unknown."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most connectors own nothing to release
        """Release what the connector opened itself (not a client it was given)."""


def validate_names(kind: str, wanted: Sequence[str], live: Sequence[Named]) -> None:
    """Fail fast when configuration names a queue or priority the helpdesk does not have."""
    names = {n.name for n in live}
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ConnectorConfigError(f"unknown {kind} {', '.join(map(repr, missing))}; the helpdesk has {sorted(names)}")
