"""The API on a hostile network: guessing limits, Host names, protective headers, nested JSON, /readyz, TCP_NODELAY.

Behind a proxy on another loopback address, with a real `ticketd serve`: tests/daemon/web/test_proxies.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from daemon.metrics import Metrics
from daemon.runtime.intake import PushReply
from daemon.web.server import bind
from daemon.web.throttle import Throttle, client_key
from tests.support.web import AUTH, TOKEN, services_of

WRONG = {"Authorization": "Bearer wrong-token-0123456789-abcdefgh"}
DEEP = "[" * 50_000 + "]" * 50_000


def _metric(client: TestClient, line: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


# -------------------------------------------------------------------------------- guessing tokens


def test_wrong_bearer_tokens_are_limited_per_client_then_refused_unread_counted_and_logged_once(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(failed_auth_per_minute=3)
    with capture_logs() as logs:
        wrong = [client.get("/api/v1/models", headers=WRONG).status_code for _ in range(3)]
        limited = client.get("/api/v1/models", headers=WRONG)
        right_but_limited = client.get("/api/v1/models", headers=AUTH)  # not even looked at
        no_token = client.get("/api/v1/models")  # no credentials: no guess, never throttled
        probe = client.get("/readyz")
    assert wrong == [401, 401, 401]
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "too_many_failures"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "api.failed_auth_per_minute" in limited.json()["error"]["message"]
    assert right_but_limited.status_code == 429
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthorized"
    assert probe.status_code == 200
    assert _metric(client, 'ticketd_auth_failures_total{kind="bearer"}') == 3
    assert _metric(client, 'ticketd_auth_throttled_total{kind="bearer"}') == 2
    refused = [e for e in logs if e["event"] == "credentials refused"]
    assert len(refused) == 1 and refused[0]["client"] == "testclient" and refused[0]["kind"] == "bearer"
    assert len([e for e in logs if e["event"].startswith("client refused for a while")]) == 1
    assert not any(TOKEN in repr(e) or "wrong-token" in repr(e) for e in logs)


def test_the_limit_ends_with_its_minute_and_ipv6_clients_count_by_their_64(monkeypatch: pytest.MonkeyPatch) -> None:
    throttle = Throttle(lambda: 2, Metrics())
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])  # limits' memory storage reads time.time()
    for _ in range(2):
        assert throttle.refuse("2001:db8:1:2::5", "bearer") is None
        throttle.failed("2001:db8:1:2::5", "bearer", "wrong")
    assert throttle.refuse("2001:db8:1:2:ffff::9", "bearer") is not None  # same /64: same client
    assert throttle.refuse("2001:db8:1:3::5", "bearer") is None  # another /64
    assert throttle.refuse("10.0.0.5", "login") is None
    now[0] += 61
    assert throttle.refuse("2001:db8:1:2::5", "bearer") is None
    assert client_key("::ffff:10.0.0.5") == "10.0.0.5" and client_key("2001:db8::1") == "2001:db8::/64"


def test_dashboard_logins_are_limited_per_client(make_client: Callable[..., TestClient]) -> None:
    client = make_client(failed_auth_per_minute=2)
    client.follow_redirects = False
    wrong = [client.post("/ui/login", data={"token": f"guess-{i}"}).status_code for i in range(2)]
    limited = client.post("/ui/login", data={"token": TOKEN})
    assert wrong == [401, 401]
    assert limited.status_code == 429 and "try again in" in limited.text
    assert int(limited.headers["retry-after"]) >= 1 and "set-cookie" not in limited.headers
    assert _metric(client, 'ticketd_auth_failures_total{kind="login"}') == 2
    assert _metric(client, 'ticketd_auth_throttled_total{kind="login"}') == 1


def test_unsigned_pushes_are_limited_per_client_and_logged_once_with_the_address(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(failed_auth_per_minute=3)
    seen: list[str] = []

    def hooks(name: str, headers: Mapping[str, str], body: bytes) -> PushReply:
        seen.append(name)
        return PushReply("rejected", "X-Hub-Signature missing or not signed with the webhook_secret")

    services_of(client).hooks = hooks
    with capture_logs() as logs:
        answers = [client.post("/api/v1/hooks/zammad", content=b"{}").status_code for _ in range(5)]
    assert answers == [401, 401, 401, 429, 429]
    assert len(seen) == 3  # a limited client's pushes are not even read
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == [
        "credentials refused",
        "client refused for a while: too many failed credentials",
    ]
    assert warnings[0]["client"] == "testclient" and warnings[0]["kind"] == "push"
    assert _metric(client, 'ticketd_auth_failures_total{kind="push"}') == 3


# -------------------------------------------------------------------------------- /readyz


def test_readyz_without_a_token_shows_a_summary_and_keeps_the_status_code(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(read_tokens=[])
    secret_details = {
        "model": {"loaded": True, "version": "v2", "path": "/var/lib/ticketd/models/versions/v2"},
        "connectors": {
            "mailbox": {"ready": False, "reason": "credentials: login as 'helpdesk-agent' rejected", "owned": True},
            "znuny": {"ready": True, "reason": None},
        },
    }
    services_of(client).readiness = lambda: (False, secret_details)
    public = client.get("/readyz")
    assert public.status_code == 503
    body = public.text
    assert "helpdesk-agent" not in body and "/var/lib" not in body and "mailbox" not in body
    assert public.json()["details"]["model"] == {"loaded": True}
    assert public.json()["details"]["connectors"] == {"ready": 1, "total": 2}
    full = client.get("/readyz", headers=AUTH)
    assert full.status_code == 503 and full.json()["details"] == secret_details
    wrong = client.get("/readyz", headers=WRONG)
    assert wrong.status_code == 401 and "helpdesk-agent" not in wrong.text


# -------------------------------------------------------------------------------- Host names


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (None, "evil.example", 400),  # a DNS-rebinding page's own name
        (None, "", 200),  # no Host at all (HTTP/1.0): not a browser
        (None, "localhost:8080", 200),
        (None, "127.0.0.1:8080", 200),
        (None, "[::1]:8080", 200),
        (None, "10.1.2.3", 200),  # a kubelet probe or scraper by pod IP
        (None, socket.gethostname(), 200),
        (["ticketd.example.org", "*.svc.cluster.local"], "TicketD.Example.org.", 200),
        (["ticketd.example.org", "*.svc.cluster.local"], "ticketd.ticketd.svc.cluster.local:8080", 200),
        (["ticketd.example.org", "*.svc.cluster.local"], "svc.cluster.local.evil.example", 400),
        (["ticketd.example.org", "*.svc.cluster.local"], "localhost", 400),  # the list replaces the defaults
        (["*"], "anything.example", 200),
    ],
)
def test_only_allowed_host_names_are_answered(
    make_client: Callable[..., TestClient], allowed: list[str] | None, host: str, status: int
) -> None:
    client = make_client(allowed_hosts=allowed, host="127.0.0.1")
    answer = client.get("/healthz", headers={"Host": host})
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["error"]["code"] == "host_not_allowed"
        assert "api.allowed_hosts" in answer.json()["error"]["message"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert client.get("/readyz", headers={"Host": host}).status_code == 400
        assert client.get("/metrics", headers={"Host": host}).status_code == 400


def test_refused_hosts_are_counted_and_logged_at_most_once_a_minute(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    with capture_logs() as logs:
        for i in range(5):
            assert client.get("/healthz", headers={"Host": f"rebind-{i}.example"}).status_code == 400
    assert len([e for e in logs if e["event"].startswith("request for a host")]) == 1
    assert _metric(client, "ticketd_host_refused_total") == 5


# -------------------------------------------------------------------------------- protective headers


def _protected(answer: Any, csp: str | None = "default-src 'none'") -> None:
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    if csp is not None:
        assert headers["content-security-policy"].startswith(csp)


def test_every_answer_carries_the_dashboards_protective_headers(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    for answer in (
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/metrics"),
        client.get("/openapi.json"),
        client.get("/api/v1/models", headers=AUTH),
        client.get("/api/v1/models"),  # 401
        client.get("/no/such/path"),  # 404
        client.post("/api/v1/classify", json={"ticket_data": "printer"}, headers=AUTH),
    ):
        _protected(answer)
        assert answer.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    svc = services_of(client)
    monkeypatch.setattr(svc.store, "list", _crash)
    crashed = client.get("/api/v1/models", headers=AUTH)
    assert crashed.status_code == 500
    _protected(crashed)
    static = client.get("/docs/static/swagger-ui.css")
    _protected(static, csp=None)
    assert "no-store" not in static.headers.get("cache-control", "")
    login = client.get("/ui/login")
    _protected(login)
    assert "script-src 'self';" in login.headers["content-security-policy"]  # the dashboard's own policy


def _crash() -> None:
    raise RuntimeError("the store is gone")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_allow_exactly_their_own_inline_scripts(
    make_client: Callable[..., TestClient], page: str
) -> None:
    answer = make_client().get(page)
    _protected(answer)
    policy = answer.headers["content-security-policy"]
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", answer.text, re.S)
    hashes = re.findall(r"'sha256-([^']+)'", policy)
    expected = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in inline]
    assert hashes == expected
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy and "http" not in policy


# -------------------------------------------------------------------------------- nested JSON


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/classify", '{"ticket_data": "printer", "x": ' + DEEP + "}"),
        ("/api/v1/classify/batch", '{"tickets": ' + DEEP + "}"),
        ("/api/v1/train", DEEP),
    ],
)
def test_json_nested_too_deeply_is_a_400_everywhere(
    make_client: Callable[..., TestClient], path: str, body: str
) -> None:
    client = make_client()
    with capture_logs() as logs:
        answer = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"
    assert "nested too deeply" in answer.json()["error"]["message"]
    assert not [e for e in logs if e["log_level"] == "error"]


@pytest.mark.parametrize(("kind", "body"), [("application/x-ndjson", DEEP), ("application/json", "[" + DEEP + "]")])
def test_an_upload_nested_too_deeply_is_a_400_naming_its_line(
    make_client: Callable[..., TestClient], kind: str, body: str
) -> None:
    client = make_client()
    answer = client.post("/api/v1/train-data", content=b"\n" + body.encode(), headers={**AUTH, "content-type": kind})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_dataset" and "nested too deeply" in error["message"]
    assert error["details"][0]["line"] == 2


# -------------------------------------------------------------------------------- TCP_NODELAY


def test_the_api_socket_turns_nagle_off_for_every_accepted_connection() -> None:
    listener = bind("127.0.0.1", 0)
    listener.listen()
    try:
        with socket.create_connection(listener.getsockname()) as _:
            accepted, _ = listener.accept()
            with accepted:
                # asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; Linux copies it from the listener.
                assert accepted.proto == socket.IPPROTO_TCP
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.close()
