"""What a connector may raise; the daemon's coordinator maps each class to one policy.

ConnectorError
├── TransientError   the helpdesk is unreachable or failing: retry later with backoff
├── AuthError        credentials rejected: stop polling, report not ready
├── TicketError      this one ticket cannot be read or written: skip it, keep going
├── ConfigError      the connector's configuration is invalid (names the key)
├── PushRejected     a push request is not from the helpdesk (no or a wrong signature/token): 401
└── NotReady         a pushed ticket exists but is not complete yet (no article): ask again shortly
"""

from __future__ import annotations


class ConnectorError(Exception):
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


class ConfigError(ConnectorError):
    """The connector cannot be built from its configuration."""


class PushRejected(ConnectorError):
    """A push request that cannot be shown to come from the helpdesk; its body is not looked at further."""


class NotReady(ConnectorError):
    """The helpdesk announced a ticket before it finished writing it; the same call soon will succeed."""

    def __init__(self, message: str, *, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id}: {message}")
        self.ticket_id = ticket_id
