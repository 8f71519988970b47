"""Fault injection for the served fakes: a seeded share of calls fails the way helpdesks and their proxies fail.

`Faulty(fake, flavour=...)` answers through `serve()` like the wrapped fake, except that `rate` of
the calls (chosen by a seeded RNG; the kinds dealt from a shuffled deck, so all of them come up) get one of:

- ``502`` / ``503``: the reverse proxy's HTML error page; the helpdesk never saw the call.
- ``reset``: the connection closes without an answer before the call reaches the helpdesk.
- ``reset_after``: the helpdesk did the work, then the connection dies (the write happened!).
- ``timeout``: the server hangs past the client's timeout and never does the work.
- ``timeout_after``: the work is done but the answer comes after the client gave up.
- ``truncated``: the work is done and the JSON answer is cut in half.
- ``not_json``: HTTP 200 with a captive-portal style HTML page instead of JSON.
- ``app_error``: the helpdesk's own error object. Znuny: every session expires, so the call gets
  Znuny's HTTP 200 ``{"Error": {"ErrorCode": "<Op>.AuthFail"}}`` (recording 026) and the client must
  log in again; Zammad: its opaque HTTP 500 ``{"error": "Error ID ...: Please contact your administrator."}``.

The ``*_after`` kinds are the dangerous ones: a write that succeeded but looks failed must not be
written twice. `log` keeps (time, method, path, outcome) per call for backoff checks.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from tests.support.fakes.znuny import Response

KINDS = ("502", "503", "reset", "reset_after", "timeout", "timeout_after", "truncated", "not_json", "app_error")
APACHE_502 = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>502 Proxy Error</title>\n'
    b"</head><body>\n<h1>Proxy Error</h1>\n<p>The proxy server received an invalid\r\nresponse from an upstream "
    b"server.</p>\n</body></html>\n"
)
NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
PORTAL = b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body>Please log in.</body></html>"


@dataclass(frozen=True)
class Reply(Response):
    """A complete answer (the server's three headers), sent `delay` seconds late."""

    delay: float = 0.0


@dataclass(frozen=True)
class Hangup:
    """No answer: the connection is closed after `delay` seconds (`status` None tells `serve()`)."""

    delay: float = 0.0
    raw: bytes = b""
    status: None = None


@dataclass
class Faulty:
    """Wraps a FakeZnuny or FakeZammad for `tests.support.fakes.http.serve`; `active` switches the faults on and off."""

    fake: Any
    flavour: Literal["znuny", "zammad"]
    rate: float = 0.3
    seed: int = 0
    timeout: float = 1.0  # the daemon's configured request timeout: hangs last longer than this
    kinds: tuple[str, ...] = KINDS
    active: bool = True
    injected: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    log: list[tuple[float, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._deck: list[str] = []
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Any:
        with self._lock:
            self.calls += 1
            kind = "ok"
            if self.active and self._rng.random() < self.rate:
                if not self._deck:  # a shuffled deck of kinds: every kind within each len(kinds) faults
                    self._deck = self._rng.sample(self.kinds, len(self.kinds))
                kind = self._deck.pop()
                self.injected[kind] += 1
            self.log.append((time.time(), method, path, kind))
            return self._answer(kind, method, path, query, headers, body)

    def _answer(self, kind: str, method: str, path: str, query: str, headers: Any, body: bytes) -> Any:
        hang = self.timeout + 0.5
        if kind == "502":
            return Reply(502, "text/html; charset=iso-8859-1", APACHE_502)
        if kind == "503":
            return Reply(503, "text/html", NGINX_503)
        if kind == "reset":
            return Hangup()
        if kind == "timeout":
            return Hangup(delay=hang)
        if kind == "not_json":
            return Reply(200, "text/html; charset=utf-8", PORTAL)
        if kind == "app_error" and self.flavour == "zammad":
            error = f"Error ID {secrets.token_hex(3)}: Please contact your administrator."
            return Reply(500, "application/json; charset=utf-8", json.dumps({"error": error}).encode())
        if kind == "app_error":
            for session_id in list(self.fake.sessions):
                self.fake.expire_session(session_id)
        answer = self._forward(method, path, query, headers, body)
        if kind == "reset_after":
            return Hangup()
        if kind == "timeout_after":
            return Reply(answer.status, answer.content_type, answer.body, delay=hang)
        if kind == "truncated" and answer.status is not None:
            return Reply(answer.status, answer.content_type, answer.body[: len(answer.body) // 2])
        return answer

    def _forward(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Any:
        if self.flavour == "znuny":
            return self.fake.handle(method, path, query, headers, body)
        lowered = {k.lower(): v for k, v in dict(headers).items()}
        try:
            status, out, payload = self.fake.handle(method, path, query, lowered, body)
        except httpx.TransportError:
            return Hangup()
        return Reply(status, out.get("content-type", "application/json; charset=utf-8"), payload)
