"""Helpers for runs against the suite's real Znuny: a fresh inbox, a connector section, a human agent, and
ticketd's shipped web service with its placeholders filled in."""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from tests.support.backends.znuny_live import LiveHarness
from tests.support.paths import ROOT
from tests.support.servers.znuny import ZnunyServer

SHIPPED = ROOT / "deploy" / "znuny" / "ticketd-webservice.yml"
HOST, TOKEN = "http://ticketd.invalid:8080", "CHANGE-ME-push-token"  # the shipped file's placeholders
WEBSERVICE = "ticketd"  # the suite imported the shipped file under this name (tests/support/paths.py)


def inbox(server: ZnunyServer) -> str:
    """A fresh inbound queue, so a run sees only the tickets its test created."""
    name = f"Inbox-{secrets.token_hex(3)}"
    server.console("Admin::Queue::Add", "--name", name, "--group", "users")
    return name


def connection(server: ZnunyServer, webservice: str, inbox: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "path_prefix": server.path_prefix,
        "webservice": webservice,
        "user": server.user,
        "password": server.password,
        "inbound_queues": [inbox],
        **extra,
    }


def human(server: ZnunyServer) -> LiveHarness:
    return LiveHarness(
        server.url, user=server.user, password=server.password, webservice="ticketd", path_prefix=server.path_prefix
    )


def render(api: str, token: str) -> str:
    """The shipped definition with ticketd's URL and the token put in for the placeholders (README's sed)."""
    text = SHIPPED.read_text(encoding="utf-8")
    assert HOST in text and TOKEN in text, "the shipped placeholders changed: update this test and the README"
    rendered = text.replace(HOST, api).replace(TOKEN, token)
    expected = yaml.safe_load(text)  # nothing else differs from the shipped file
    transport = expected["Requester"]["Transport"]["Config"]
    transport["Host"], transport["Authentication"]["BasicAuthPassword"] = api, token
    assert yaml.safe_load(rendered) == expected
    return rendered
