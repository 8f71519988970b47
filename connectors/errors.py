"""What a connector may raise; the daemon's coordinator maps each class to one policy.

The root of ticketd's one exception tree, `TicketdError`, lives here, at the bottom of the import
graph, so that connectors (which never import the daemon) and the daemon share it. The whole tree, the
connectors' branch included, is drawn once in `daemon/errors.py`, beside the table that maps each class
to its CLI line, exit code and HTTP answer.
"""

from __future__ import annotations


class TicketdError(Exception):
    """The root of every error a user can cause: the CLI prints it as one line, never a traceback."""


class ConnectorError(TicketdError):
    """Base class; messages name the connector, the call and the culprit, never a secret."""


class TransientError(ConnectorError):
    """Worth retrying later; `retry_after` is the server's hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Retrying with the same credentials would only lock the account."""


class TicketError(ConnectorError):
    """One ticket is unusable (gone, no permission, malformed); the others are not affected."""

    def __init__(self, message: str, *, ticket_id: str | None = None) -> None:
        super().__init__(f"ticket {ticket_id}: {message}" if ticket_id is not None else message)
        self.ticket_id = ticket_id


class ConnectorConfigError(ConnectorError):
    """The connector cannot be built from its configuration."""


class PushRejected(ConnectorError):
    """A push request that cannot be shown to come from the helpdesk; its body is not looked at further."""


class NotReady(ConnectorError):
    """The helpdesk announced a ticket before it finished writing it; the same call soon will succeed."""

    def __init__(self, message: str, *, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id}: {message}")
        self.ticket_id = ticket_id
