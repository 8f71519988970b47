"""Thin async client for Zammad's REST API v1: one place that turns HTTP outcomes into connector errors.

Status mapping (Zammad renders errors as `{"error": ..., "error_human": ...}`):
401/403 -> AuthError; 404 -> TicketError for a ticket, ConfigError otherwise (wrong base URL);
422 "No lookup value found for ..." -> ConfigError (the group/priority name is unknown to this
Zammad, so every ticket routed there would fail the same way); other 422 -> TicketError for a ticket,
ConfigError otherwise; 429 -> TransientError with `retry_after`; 5xx, connection errors, timeouts
and bodies that are not JSON -> TransientError.
"""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.base import secret
from connectors.errors import AuthError, ConfigError, TicketError, TransientError
from connectors.zammad.config import ZammadConfig

API = "/api/v1"


class ZammadClient:
    """Adds credentials per request, so the shared `httpx.AsyncClient` is never mutated."""

    def __init__(self, config: ZammadConfig, http: httpx.AsyncClient) -> None:
        self._base = config.url + API
        self._http = http
        self._headers = {"Accept": "application/json"}
        self._auth: httpx.Auth | None = None
        if config.token is not None:
            self._headers["Authorization"] = f"Token token={secret(config.token)}"
        else:
            self._auth = httpx.BasicAuth(config.user or "", secret(config.password))
        if config.on_behalf_of:
            self._headers["From"] = config.on_behalf_of

    async def get(self, path: str, params: dict[str, str] | None = None, *, ticket_id: str | None = None) -> Any:
        return await self.request("GET", path, params=params, ticket_id=ticket_id)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        ticket_id: str | None = None,
    ) -> Any:
        """One call; returns the decoded JSON body or raises a connector error naming call and culprit."""
        call = f"zammad {method} {API}{path}"
        kwargs: dict[str, Any] = {"params": params, "headers": self._headers}
        if body is not None:
            kwargs["json"] = body
        if self._auth is not None:
            kwargs["auth"] = self._auth
        try:
            response = await self._http.request(method, self._base + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{call}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{call}: connection failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise _error(call, response, ticket_id)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError(f"{call}: HTTP {response.status_code} with a body that is not JSON") from None


def _error(call: str, response: httpx.Response, ticket_id: str | None) -> Exception:
    status = response.status_code
    detail = _server_message(response)
    message = f"{call}: HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return AuthError(message)
    if status == 429:
        return TransientError(message, retry_after=_retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        return TransientError(message)
    if status == 422 and detail.startswith("No lookup value found"):
        return ConfigError(message)
    if ticket_id is not None:
        return TicketError(message, ticket_id=ticket_id)
    if status in (404, 422):
        return ConfigError(message)
    return TransientError(message)


def _server_message(response: httpx.Response) -> str:
    """Zammad's own explanation, shortened; it never echoes credentials."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    text = data.get("error_human") or data.get("error") or ""
    return str(text)[:300]


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
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
