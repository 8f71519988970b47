"""A thin async client for GenericTicketConnectorREST: auth, transport and the server's error shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from connectors import _json as safe_json
from connectors._http import error_for_status, transport_errors
from connectors.base import secret
from connectors.errors import AuthError, ConnectorConfigError, TransientError
from connectors.znuny.routes import Route

Params = Sequence[tuple[str, str]]
_AUTH_CODES = ("AuthFail", "SessionInvalid")
_ROUTE_ERROR = "HTTP::REST Error while determine Operation"
_STATUS_HINTS = {
    401: " (a proxy in front of the helpdesk?)",
    403: " (a proxy in front of the helpdesk?)",
    404: "; check 'url' and 'path_prefix'",
}


class ApiError(Exception):
    """An operation error: Znuny answers HTTP 200 with `{"Error": {"ErrorCode", "ErrorMessage"}}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def kind(self) -> str:
        """The part after the operation name (`TicketGet.AccessDenied` -> `AccessDenied`)."""
        return self.code.rpartition(".")[2]


class FaultError(Exception):
    """An operation failure reported as HTTP 500 with a JSON `faultstring` (e.g. a forbidden queue move)."""


class NoRoute(ConnectorConfigError):
    """No operation at this method and path: HTTP 500 `HTTP::REST Error while determine Operation`."""


class NoAnswer(TransientError):
    """The server closed the connection without a byte: a dying proxy, or Znuny's answer to an unknown web service."""


class _ConnectionTrace:
    """Whether a request went out on a kept-alive connection (httpcore's trace: no new TCP connection made).

    A server may close an idle kept-alive connection just as a request is sent on it (Apache reaping a
    child above MaxSpareServers, KeepAliveTimeout). That request got no byte back and was never read, so,
    as browsers do, it is sent once more on a new connection. On a connection of its own, no answer is
    the server's answer (Znuny's to an unknown web service) and is not repeated.
    """

    def __init__(self) -> None:
        self.sent = False
        self.connected = False

    async def event(self, name: str, _info: dict[str, Any]) -> None:
        if name.startswith("connection.connect_tcp."):
            self.connected = True
        elif name.startswith("http11.send_request_headers."):
            self.sent = True

    @property
    def reused(self) -> bool:
        return self.sent and not self.connected


class ZnunyClient:
    """One web service; keeps a SessionID and renews it once when the server no longer accepts it."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        label: str,
        user: str | None,
        password: SecretStr | None,
        session_id: SecretStr | None,
    ) -> None:
        self._http = http
        self._base = base_url
        self._label = label
        self._user = user
        self._password = password
        self._session = secret(session_id) or None
        self.session_route = Route("POST", "/Session")

    @property
    def _can_login(self) -> bool:
        return bool(self._user) and self._password is not None

    async def login(self) -> None:
        """SessionCreate with the configured login; the password travels only in this POST body."""
        if not self._can_login:
            return
        self._session = None
        body = {"UserLogin": self._user, "Password": secret(self._password)}
        try:
            data = await self._send(self.session_route, self.session_route.path, (), body)
        except ApiError as exc:
            if exc.kind in _AUTH_CODES or exc.kind == "MissingParameter":
                raise AuthError(f"{self._label}: SessionCreate rejected the login of {self._user!r}") from None
            raise TransientError(f"{self._label}: SessionCreate failed: {exc.code}") from None
        session = data.get("SessionID")
        if not isinstance(session, str) or not session:
            raise TransientError(f"{self._label}: SessionCreate answered without a SessionID")
        self._session = session

    async def call(
        self, route: Route, *, ticket_id: str | None = None, params: Params = (), body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One authenticated operation: GET carries everything in the query string (the server ignores GET
        bodies), any other method a JSON body (`params` become its keys, repeated keys a list)."""
        path = route.url(ticket_id)
        if route.method != "GET" and params:
            body = {**_as_body(params), **(body or {})}
            params = ()
        return await self._call(route, path, params, body)

    async def _call(self, route: Route, path: str, params: Params, body: dict[str, Any] | None) -> dict[str, Any]:
        fresh = False
        if self._session is None:
            await self.login()
            fresh = True
        for attempt in (1, 2):
            try:
                return await self._send(route, path, params, body, authenticated=True)
            except ApiError as exc:
                if exc.kind not in _AUTH_CODES:
                    raise
                # Expired and invalid sessions look exactly like a wrong password: renew once, then give up.
                if fresh or attempt == 2 or not self._can_login:
                    raise AuthError(f"{self._label}: {exc.code} for {self._user or 'the configured session'}") from None
                await self.login()
                fresh = True
        raise AssertionError("unreachable")

    async def _send(
        self,
        route: Route,
        path: str,
        params: Params,
        body: dict[str, Any] | None,
        *,
        authenticated: bool = False,
    ) -> dict[str, Any]:
        method = route.method
        operation = str(route)
        query: list[tuple[str, str | int | float | bool | None]] = list(params)
        payload = dict(body) if body is not None else None
        if authenticated and self._session is not None:
            if method == "GET":
                query.insert(0, ("SessionID", self._session))
            else:
                payload = {"SessionID": self._session, **(payload or {})}
        with transport_errors(f"{self._label}: {operation}", self._scrub):
            for sent in (1, 2):
                connection = _ConnectionTrace()
                try:
                    response = await self._http.request(
                        method,
                        self._base + path,
                        params=query or None,
                        json=payload,
                        extensions={"trace": connection.event},
                    )
                    break
                except httpx.RemoteProtocolError as exc:
                    if not str(exc).startswith("Server disconnected without"):
                        raise
                    if sent == 1 and connection.reused:
                        continue  # the server ended this kept-alive connection as the request went out: resend
                    raise NoAnswer(f"{self._label}: {operation}: the server closed the connection, no answer") from None
        return self._decode(operation, response)

    def _decode(self, operation: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 200:
            try:
                data = safe_json.loads(response.content)
            except ValueError:
                raise TransientError(f"{self._label}: {operation} answered HTTP 200 without JSON") from None
            if not isinstance(data, dict):
                raise TransientError(f"{self._label}: {operation} answered JSON that is not an object")
            error = data.get("Error")
            if isinstance(error, dict):
                raise ApiError(str(error.get("ErrorCode", "")), str(error.get("ErrorMessage", "")))
            return data
        text = response.text.strip()
        if status == 500 and text.startswith("{"):
            try:
                fault = safe_json.loads(response.content)
            except ValueError:
                fault = None
            if isinstance(fault, dict) and isinstance(fault.get("faultstring"), str):
                raise FaultError(fault["faultstring"])
        if status == 500 and text.startswith(_ROUTE_ERROR):
            raise NoRoute(f"{self._label}: the web service has no operation at {operation}: {text[:200]}")
        # Znuny itself answers 200 or 500; any other status comes from something in front of it.
        hint = _STATUS_HINTS.get(status, f": {text[:200]}")
        message = f"{self._label}: {operation} answered HTTP {status}{hint}"
        raise error_for_status(status, message, retry_after_header=response.headers.get("Retry-After"))

    def _scrub(self, text: str) -> str:
        for value in (self._session, secret(self._password)):
            if value:
                text = text.replace(value, "***")
        return text


def _as_body(params: Params) -> dict[str, Any]:
    """Query-style pairs as JSON keys: a repeated key (`Queues`, `StateType`) becomes a list."""
    out: dict[str, Any] = {}
    for key, value in params:
        if key in out:
            prev = out[key]
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out
