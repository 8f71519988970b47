"""Behind a TLS-terminating reverse proxy on another address (an Ingress), with a real `ticketd serve`.

The proxy listens on 127.0.0.2 and connects to ticketd from 127.0.0.2, adding the headers ingress-nginx
adds: X-Forwarded-For (appended), X-Forwarded-Proto https, X-Forwarded-Host. ticketd believes them from
`api.trusted_proxies` only.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.servers.ticketd import serve_config, ticketd_serve

ADMIN = "proxy-admin-token-0123456789-abcdef"
PUBLIC = "ticketd.example.org"
ORIGIN = f"https://{PUBLIC}"


class _Forwarder(BaseHTTPRequestHandler):
    """One request to the upstream, from the proxy's own address, with the forwarded headers."""

    upstream: tuple[str, int]
    source: str

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        seen = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{seen}, {self.client_address[0]}" if seen else self.client_address[0]
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = self.headers.get("Host", "")
        upstream = http.client.HTTPConnection(*self.upstream, timeout=10, source_address=(self.source, 0))
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = _forward

    def log_message(self, *_: object) -> None:
        pass


@dataclass
class Site:
    direct: str  # ticketd itself
    proxy: str  # the proxy in front of it
    log: Path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    api = {
        "tokens": [ADMIN],
        "failed_auth_per_minute": 3,
        "trusted_proxies": ["127.0.0.2/32"],
        "allowed_hosts": [PUBLIC],
    }
    with ticketd_serve(tmp_path, serve_config(tmp_path, api)) as served:
        handler = type("Forwarder", (_Forwarder,), {"upstream": ("127.0.0.1", served.port), "source": "127.0.0.2"})
        proxy = ThreadingHTTPServer(("127.0.0.2", 0), handler)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            yield Site(served.url, f"http://127.0.0.2:{proxy.server_address[1]}", served.log)
        finally:
            proxy.shutdown()


def _client(base: str, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=base, transport=transport, follow_redirects=False, timeout=10)


def test_the_dashboard_login_works_behind_the_proxy_with_a_secure_cookie(site: Site) -> None:
    with _client(site.proxy) as browser:
        form = browser.get("/ui/login", headers={"Host": PUBLIC})
        assert form.status_code == 200
        login = browser.post("/ui/login", data={"token": ADMIN}, headers={"Host": PUBLIC, "Origin": ORIGIN})
        assert login.status_code == 303, login.text
        cookie = login.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        value = cookie.split(";", 1)[0]
        page = browser.get("/ui/models", headers={"Host": PUBLIC, "Cookie": value})
        assert page.status_code == 200 and "Models" in page.text


def test_forwarded_headers_from_anyone_but_the_proxy_are_ignored(site: Site) -> None:
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC, "X-Forwarded-For": "203.0.113.9"}
    with _client(site.direct) as direct:
        # ticketd sees http://127.0.0.1:port, so the https Origin is another site: refused, no cookie.
        login = direct.post("/ui/login", data={"token": ADMIN}, headers={**forged, "Origin": ORIGIN})
        assert login.status_code == 403 and "set-cookie" not in login.headers
        # Without Origin the login works, and its cookie is not Secure: the request really was plain http.
        plain = direct.post("/ui/login", data={"token": ADMIN}, headers=forged)
        assert plain.status_code == 303 and "Secure" not in plain.headers["set-cookie"]
        # A name that is not allowed is refused here too; through the proxy it is the proxy's Host that counts.
        assert direct.get("/healthz", headers={"Host": "rebound.example"}).status_code == 400


def test_guessing_limits_count_the_real_client_behind_the_proxy(site: Site) -> None:
    wrong = {"Authorization": "Bearer wrong-token-0123456789-abcdefgh", "Host": PUBLIC}
    with _client(site.proxy, source="127.0.0.1") as first, _client(site.proxy, source="127.0.0.3") as second:
        answers = [first.get("/api/v1/models", headers=wrong).status_code for _ in range(3)]
        # A forged X-Forwarded-For does not make a new client: the proxy appends the real peer, the rightmost.
        evading = first.get("/api/v1/models", headers={**wrong, "X-Forwarded-For": "198.51.100.7"})
        other = second.get("/api/v1/models", headers=wrong)
    assert answers == [401, 401, 401]
    assert evading.status_code == 429
    assert other.status_code == 401  # another client behind the same proxy is not held up
    events = [json.loads(line) for line in site.log.read_text().splitlines() if line.startswith("{")]
    refused = [e for e in events if e["event"] == "credentials refused"]
    assert sorted(e["client"] for e in refused) == ["127.0.0.1", "127.0.0.3"]  # never the proxy's 127.0.0.2
    assert "wrong-token" not in site.log.read_text()
