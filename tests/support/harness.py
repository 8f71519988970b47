"""What the contract suite needs from each backend's test server (a fake or a real one).

Every connector's tests provide one `Harness`; `tests/connectors/test_contract.py` runs the same
suite against all of them. The harness talks to the server behind the connector's back (like a
human agent would), never through the connector under test.
"""

from __future__ import annotations

from typing import Protocol

from connectors.base import Connector


class Harness(Protocol):
    inbound: str  # the queue/group/folder new tickets arrive in (configured as inbound)
    target: str  # another queue the classifier may route to
    other: str  # a third queue, where a human moves a ticket to
    priority: str  # a valid priority name, different from new tickets' default

    async def connector(self, *, bad_auth: bool = False) -> Connector:
        """A connector configured for this server (inbound = `inbound`), optionally with wrong credentials."""
        ...

    def add_ticket(self, subject: str, body: str) -> str:
        """Create a new ticket in `inbound` as a customer would; returns its id as the connector reports it."""
        ...

    def human_move(self, ticket_id: str, queue: str) -> None:
        """An agent moves the ticket (not through the connector)."""
        ...

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        """An agent files the ticket into `queue` with `priority` and closes it."""
        ...

    def queue_of(self, ticket_id: str) -> str:
        """The ticket's queue as the server holds it now."""
        ...

    def priority_of(self, ticket_id: str) -> str | None:
        """The ticket's priority as the server holds it now."""
        ...

    def writes(self, ticket_id: str) -> int:
        """How many changes were written to this ticket so far (queue moves, priority changes, notes)."""
        ...

    def fail_next(self, calls: int) -> None:
        """Make the next `calls` requests fail the way this server fails (5xx, dropped connection)."""
        ...

    async def aclose(self) -> None:
        """Stop whatever the harness started."""
        ...
