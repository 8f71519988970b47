"""How the HTTP connectors (Znuny, Zammad, RT) read their URL and map failures to `connectors.errors`: one table each.

In the style of httpx's own `map_exceptions`: transport failures go through `TRANSPORT_ERRORS`,
status codes through `error_for_status`; a connector adds only what its API says beyond HTTP
(Znuny's faults in a 200 or 500, Zammad's "No lookup value found").
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from connectors.errors import AuthError, ConnectorConfigError, ConnectorError, TicketError, TransientError

# First match wins; every transport failure is worth retrying later.
TRANSPORT_ERRORS: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "could not connect"),
    (httpx.TransportError, "failed"),
)


@contextmanager
def transport_errors(call: str, scrub: Callable[[str], str] = str) -> Iterator[None]:
    """Turn an httpx transport failure inside the block into a TransientError naming `call`.

    `scrub` removes secrets (a session id, a password) from httpx's message before it is shown.
    """
    try:
        yield
    except httpx.TransportError as exc:
        what = next(text for kind, text in TRANSPORT_ERRORS if isinstance(exc, kind))
        detail = scrub(str(exc))
        raise TransientError(f"{call} {what} ({type(exc).__name__}{': ' + detail if detail else ''})") from None


def error_for_status(
    status: int, message: str, *, retry_after_header: str | None = None, ticket_id: str | None = None
) -> ConnectorError:
    """The error an HTTP status means; `ticket_id` when the call was about one ticket."""
    if status in (401, 403):
        return AuthError(message)  # retrying with the same credentials would only lock the account
    if status == 429 or status >= 500:
        return TransientError(message, retry_after=retry_after(retry_after_header))
    if ticket_id is not None:
        return TicketError(message, ticket_id=ticket_id)  # gone, no permission, malformed: skip this one
    if status in (404, 422):
        return ConnectorConfigError(message)  # a wrong URL, path or name in the config: it fails the same way again
    return TransientError(message, retry_after=retry_after(retry_after_header))


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date (a date without zone is taken as UTC)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def root_url(value: str, *, api: str) -> str:
    """A helpdesk's root URL from config: http(s), no credentials in it, no trailing slash or API path `api`."""
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    if "@" in value.split("//", 1)[1].split("/", 1)[0]:
        raise ValueError("url must not carry credentials; use token or user/password")
    return value.removesuffix(api)
