"""The API's edge, before any route: which proxies are believed, which Host names are served, which headers go out.

- **Proxies** (`api.trusted_proxies`, empty by default): only from those addresses are `X-Forwarded-For`,
  `-Proto` (uvicorn's own ProxyHeadersMiddleware) and `-Host` believed, so behind an Ingress the client's
  address (rate limits, logs), the scheme (`Secure` cookies) and the host (the dashboard's same-origin
  check) are the real ones. From anyone else those headers are ignored.
- **Hosts** (`api.allowed_hosts`): a page on another site whose name was re-pointed at this server (DNS
  rebinding) sends its own name as Host; it gets 400, never `/readyz`, `/metrics` or the dashboard. IP
  addresses are always served (probes and scrapers use them; a page can only be same-origin with an IP
  by being served from it).
- **Headers**: every answer carries the dashboard's protections (nosniff, no framing, same-origin referrer
  and resource policy, no-store unless static); an HTML page without its own Content-Security-Policy (the
  API docs) gets one that allows its own inline scripts by hash and nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.logging import get_logger
from daemon.metrics import Metrics
from daemon.web.errors import error_response
from daemon.web.headers import API_CSP, API_HEADERS, BASE_HEADERS

log = get_logger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Swagger UI and ReDoc set inline styles and ReDoc runs a worker from a blob; scripts only our own or hashed.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_STATIC = ("/ui/static/", "/docs/static/")
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_MAX_HTML = 1 << 20  # the docs pages are a few KiB; a larger HTML answer is passed through unhashed


def networks(entries: Iterable[str]) -> list[Network]:
    """`api.trusted_proxies` as networks (a single address is a /32 or /128)."""
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def _trusted(peer: str | None, trusted: list[Network]) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in trusted)


class ForwardedHost:
    """`X-Forwarded-Host` from a trusted proxy becomes the request's Host (uvicorn handles -For and -Proto)."""

    def __init__(self, app: ASGIApp, trusted: list[Network]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _trusted((scope.get("client") or (None,))[0], self.trusted):
            forwarded = Headers(scope=scope).get("x-forwarded-host")
            if forwarded:
                host = forwarded.split(",")[0].strip()  # the first proxy's view: what the client asked for
                raw = [(k, v) for k, v in scope["headers"] if k != b"host"]
                scope = {**scope, "headers": [*raw, (b"host", host.encode("latin-1"))]}
        await self.app(scope, receive, send)


def default_hosts(api_host: str) -> list[str]:
    """The names this machine answers to when `api.allowed_hosts` is not set."""
    names = {"localhost", socket.gethostname().lower()}
    if api_host and not _is_ip(api_host):
        names.add(api_host.lower())
    return sorted(names)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_name(host: str) -> str:
    """A Host header without its port, lower case, without a trailing dot ('[::1]:8080' -> '::1')."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def host_allowed(host: str, allowed: list[str]) -> bool:
    """No Host (not a browser), an IP address, or a name in `allowed` (exactly, under a `*.domain`; `*`: all)."""
    name = host_name(host)
    if not name or _is_ip(name):
        return True
    for entry in allowed:
        if entry == "*" or name == entry or (entry.startswith("*.") and name.endswith(entry[1:])):
            return True
    return False


class HostCheck:
    """400 for a Host this server does not answer to; logged at most once a minute (a scan must not flood)."""

    LOG_EVERY_S = 60.0

    def __init__(self, app: ASGIApp, allowed: list[str], metrics: Metrics | None = None) -> None:
        self.app = app
        self.allowed = allowed
        self.metrics = metrics
        self._logged = -self.LOG_EVERY_S

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        if self.metrics is not None:
            self.metrics.host_refused.inc()
        now = time.monotonic()
        if now - self._logged >= self.LOG_EVERY_S:
            self._logged = now
            client = (scope.get("client") or ("unknown",))[0]
            log.warning("request for a host this server does not answer to", host=host_name(host)[:100], client=client)
        message = f"this server does not answer to the host {host_name(host)[:100]!r}; add it to api.allowed_hosts"
        await error_response(400, "host_not_allowed", message, headers=API_HEADERS)(scope, receive, send)


def _docs_csp(body: bytes) -> str:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    return _DOCS_CSP.format(hashes=hashes).replace("'self' ;", "'self';")


class SecurityHeaders:
    """The dashboard's protective headers on every response, API answers and docs pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(_STATIC)
        held: dict[str, Any] = {}  # an HTML page without a CSP: its start, until its body is known

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
                if "content-security-policy" not in headers:
                    if headers.get("content-type", "").startswith("text/html") and not static:
                        held["start"], held["body"] = message, []
                        return
                    headers["Content-Security-Policy"] = API_CSP
                await send(message)
                return
            if message["type"] == "http.response.body" and "start" in held:
                held["body"].append(message.get("body", b""))
                size = sum(len(part) for part in held["body"])
                if message.get("more_body", False) and size <= _MAX_HTML:
                    return
                body = b"".join(held.pop("body"))
                start = held.pop("start")
                policy = _docs_csp(body) if size <= _MAX_HTML else API_CSP
                MutableHeaders(scope=start)["Content-Security-Policy"] = policy
                await send(start)
                await send({**message, "body": body})
                return
            await send(message)

        await self.app(scope, receive, guarded)
