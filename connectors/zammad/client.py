"""Thin async client for Zammad's REST API v1.

HTTP failures map through `connectors._http` (401/403 auth; 429 and 5xx transient, with Retry-After;
404/422 a ticket's problem for a ticket call, else the config's). Zammad adds: errors rendered as
`{"error": ..., "error_human": ...}`, shown in the message; 422 "No lookup value found for ..." is a
ConnectorConfigError (the group/priority name is unknown to this Zammad, so every ticket routed there would
fail the same way); a body that is not JSON is transient.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors import _json as safe_json
from connectors._http import error_for_status, transport_errors
from connectors.base import secret
from connectors.errors import ConnectorConfigError, ConnectorError, TransientError
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
        with transport_errors(call):
            response = await self._http.request(method, self._base + path, **kwargs)
        if response.status_code >= 400:
            raise _error(call, response, ticket_id)
        try:
            return safe_json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError(f"{call}: HTTP {response.status_code} with a body that is not JSON") from None


def _error(call: str, response: httpx.Response, ticket_id: str | None) -> ConnectorError:
    status = response.status_code
    detail = _server_message(response)
    message = f"{call}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 422 and detail.startswith("No lookup value found"):
        return ConnectorConfigError(message)  # a queue, group or priority name the config maps to does not exist
    return error_for_status(
        status, message, retry_after_header=response.headers.get("Retry-After"), ticket_id=ticket_id
    )


def _server_message(response: httpx.Response) -> str:
    """Zammad's own explanation, shortened; it never echoes credentials."""
    try:
        data = safe_json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    text = data.get("error_human") or data.get("error") or ""
    return str(text)[:300]
