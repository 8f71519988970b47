"""Thin async client for RT 5's REST 2 (`/REST/2.0`).

RT checks a password or an auth token with bcrypt on every REST 2 call (about 0.2 s of its CPU at the default
cost), ten times what the call itself costs. With a user and password the client therefore logs in once to RT's
web UI and sends its session cookie along, with the credentials still attached: RT takes the cookie first and
the credentials only where the cookie no longer counts (a session RT expired, a write its referrer check
refused), so a lost session slows calls down and never fails them. An auth token cannot open a web session.

HTTP failures map through `connectors._http`. RT adds: errors as `{"message": ...}`, shown in the message; a 403
about one ticket is that ticket's problem (the agent may not see or change it), not a wrong password; a 400 for a
search is a TicketSQL RT refused, built from names in the config; a body that is not JSON is transient.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from connectors import _json as safe_json
from connectors._http import error_for_status, transport_errors
from connectors.base import secret
from connectors.errors import AuthError, ConnectorConfigError, ConnectorError, TicketError, TransientError
from connectors.rt.config import RTConfig

API = "/REST/2.0"
MAX_PAGES = 1000  # a listing longer than this many pages is cut, never followed for ever
Params = Sequence[tuple[str, str]]  # a list, so that `orderby` and `order` can repeat
LOGIN = "/NoAuth/Login.html"
SESSION_MAX_AGE = 600.0  # seconds a web session is used before logging in again (RT may expire it sooner)


class RTClient:
    """Adds credentials per request, so the shared `httpx.AsyncClient` is never mutated."""

    def __init__(self, config: RTConfig, http: httpx.AsyncClient, label: str) -> None:
        self._base = config.url + API
        self._http = http
        self._label = label
        self._headers = {"Accept": "application/json"}
        self._auth: httpx.Auth | None = None
        self._url = config.url
        self._login: dict[str, str] | None = None
        if config.token is not None:
            self._headers["Authorization"] = f"token {secret(config.token)}"
        else:
            self._auth = httpx.BasicAuth(config.user or "", secret(config.password))
            self._login = {"user": config.user or "", "pass": secret(config.password)}
        self._cookie: str | None = None
        self._session_at = float("-inf")
        self._session_lock = asyncio.Lock()
        self.logins = 0  # web logins so far (each costs RT one password check)

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
        headers = dict(self._headers)
        cookie = await self._session()
        if cookie is not None:
            # The referrer RT's CSRF check (RestrictReferrer) wants for a write that comes with a session cookie.
            headers.update({"Cookie": cookie, "Referer": f"{self._url}/"})
        kwargs: dict[str, Any] = {"params": list(params or ()), "headers": headers}
        if body is not None:
            kwargs["json"] = body
        if self._auth is not None:
            kwargs["auth"] = self._auth
        with transport_errors(call):
            response = await self._http.request(method, self._base + path, **kwargs)
        self._forget_cookies(response)
        if cookie is not None and 300 <= response.status_code < 400:
            # RT answers a caller with a cookie as a browser: neither the session nor the password counted.
            self._cookie, self._session_at = None, float("-inf")  # the next call logs in afresh
            raise AuthError(f"{call}: HTTP {response.status_code}: RT wants a login (session ended, password refused)")
        if response.status_code >= 400:
            raise _error(call, response, ticket_id)
        try:
            return safe_json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError(f"{call}: HTTP {response.status_code} with a body that is not JSON") from None

    @property
    def on_session(self) -> bool:
        """Whether calls now ride a web session (one password check per session, not per call)."""
        return self._cookie is not None

    async def _session(self) -> str | None:
        """The web session's cookie, logging in when there is none or it is SESSION_MAX_AGE old; None without one."""
        if self._login is None:
            return None
        if time.monotonic() - self._session_at < SESSION_MAX_AGE:
            return self._cookie
        async with self._session_lock:
            if time.monotonic() - self._session_at >= SESSION_MAX_AGE:
                self._session_at = time.monotonic()  # a failed login is tried again only after as long
                self._cookie = await self._log_in()
        return self._cookie

    async def _log_in(self) -> str | None:
        """RT's login form, then one call on the cookie alone: RT sets a cookie for a failed login too."""
        assert self._login is not None
        self.logins += 1
        try:
            answer = await self._http.post(self._url + LOGIN, data=self._login, follow_redirects=False)
            found = {name: value for name, value in answer.cookies.items() if name.startswith("RT_SID_")}
            self._forget_cookies(answer)
            if not found:
                return None
            cookie = "; ".join(f"{name}={value}" for name, value in found.items())
            probe = await self._http.get(self._base + "/rt", headers={**self._headers, "Cookie": cookie})
            self._forget_cookies(probe)
        except httpx.HTTPError:
            return None  # the calls themselves report what is wrong with the network
        return cookie if probe.status_code == 200 else None

    def _forget_cookies(self, response: httpx.Response) -> None:
        """RT's session cookies stay out of the client's jar: it may be shared, and this client sends its own."""
        for name in response.cookies:
            if name.startswith("RT_SID_"):
                self._http.cookies.delete(name)

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
