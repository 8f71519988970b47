"""Thin async client for RT 5's REST 2 (`/REST/2.0`).

HTTP failures map through `connectors._http`. RT adds: errors as `{"message": ...}`, shown in the message; a 403
about one ticket is that ticket's problem (the agent may not see or change it), not a wrong password; a 400 for a
search is a TicketSQL RT refused, built from names in the config; a body that is not JSON is transient.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from connectors import _json as safe_json
from connectors._http import error_for_status, transport_errors
from connectors.base import secret
from connectors.errors import ConnectorConfigError, ConnectorError, TicketError, TransientError
from connectors.rt.config import RTConfig

API = "/REST/2.0"
MAX_PAGES = 1000  # a listing longer than this many pages is cut, never followed for ever
Params = Sequence[tuple[str, str]]  # a list, so that `orderby` and `order` can repeat


class RTClient:
    """Adds credentials per request, so the shared `httpx.AsyncClient` is never mutated."""

    def __init__(self, config: RTConfig, http: httpx.AsyncClient, label: str) -> None:
        self._base = config.url + API
        self._http = http
        self._label = label
        self._headers = {"Accept": "application/json"}
        self._auth: httpx.Auth | None = None
        if config.token is not None:
            self._headers["Authorization"] = f"token {secret(config.token)}"
        else:
            self._auth = httpx.BasicAuth(config.user or "", secret(config.password))

    async def get(self, path: str, params: Params | None = None, *, ticket_id: str | None = None) -> Any:
        return await self.request("GET", path, params=params, ticket_id=ticket_id)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        ticket_id: str | None = None,
    ) -> Any:
        """One call; the decoded JSON body, or a connector error naming call and culprit."""
        call = f"{self._label}: {method} {API}{path}"
        kwargs: dict[str, Any] = {"params": list(params or ()), "headers": self._headers}
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

    async def pages(self, path: str, params: Params, per_page: int) -> AsyncGenerator[list[Any], None]:
        """The items of a collection page by page, in RT's order, up to its last page.

        Where RT counts the collection (`pages`), that count says where it ends. Elsewhere (`total` and `pages`
        null: history and attachments for most agents) RT drops what the agent may not see from each page after
        paging (an AutoReply's EmailRecord), so a short page is no sign of the end: an empty one is.
        """
        for page in range(1, MAX_PAGES + 1):
            data = await self.get(path, [*params, ("page", str(page)), ("per_page", str(per_page))])
            items = data.get("items") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise TransientError(f"{self._label}: GET {API}{path}: answered without an items list")
            yield items
            pages = data.get("pages")
            counted = isinstance(pages, int | float) and not isinstance(pages, bool)
            if (counted and page >= pages) or (not counted and not items):
                return


def _error(call: str, response: httpx.Response, ticket_id: str | None) -> ConnectorError:
    status = response.status_code
    detail = _server_message(response)
    message = f"{call}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 403 and ticket_id is not None:
        return TicketError(message, ticket_id=ticket_id)  # this ticket's rights, not the credentials
    if status == 400 and ticket_id is None:
        return ConnectorConfigError(f"{message} (RT refused the search built from the connector's config)")
    return error_for_status(
        status, message, retry_after_header=response.headers.get("Retry-After"), ticket_id=ticket_id
    )


def _server_message(response: httpx.Response) -> str:
    """RT's own explanation (`{"message": ...}`), shortened; it never echoes credentials."""
    try:
        data = safe_json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if isinstance(data, Mapping):
        return str(data.get("message") or "")[:300]
    return ""
