"""The contract suite against an external Znuny / OTRS / OTOBO, when ZNUNY_URL, ZNUNY_USER, ZNUNY_PASSWORD are set.

The suite's own Znuny (tests/support/servers/znuny.py) runs it in every test run; this is for trying ticketd
against the helpdesk you run. Human-side actions go through ZNUNY_ADMIN_WEBSERVICE (default: the
development sample, which has TicketCreate and TicketHistoryGet) with a session of their own. Optional:
ZNUNY_TYPE, ZNUNY_PATH_PREFIX, ZNUNY_WEBSERVICE, ZNUNY_INBOUND/TARGET/OTHER (queues), ZNUNY_PRIORITY.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.support.backends.znuny_live import ADMIN_WEBSERVICE, LiveHarness
from tests.support.contract import *  # noqa: F403 - the suite runs here with the live harness

pytestmark = [
    pytest.mark.live,
    pytest.mark.anyio,
    pytest.mark.skipif(
        not all(os.environ.get(k) for k in ("ZNUNY_URL", "ZNUNY_USER", "ZNUNY_PASSWORD")),
        reason="set ZNUNY_URL, ZNUNY_USER and ZNUNY_PASSWORD to run against a helpdesk of yours",
    ),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness() -> AsyncIterator[LiveHarness]:
    env = os.environ
    names = {
        k: env[f"ZNUNY_{k.upper()}"] for k in ("inbound", "target", "other", "priority") if f"ZNUNY_{k.upper()}" in env
    }
    h = LiveHarness(
        env["ZNUNY_URL"],
        user=env["ZNUNY_USER"],
        password=env["ZNUNY_PASSWORD"],
        webservice=env.get("ZNUNY_WEBSERVICE", "GenericTicketConnectorREST"),
        path_prefix=env.get("ZNUNY_PATH_PREFIX"),
        admin_webservice=env.get("ZNUNY_ADMIN_WEBSERVICE", ADMIN_WEBSERVICE),
        type_=env.get("ZNUNY_TYPE", "znuny"),
        **names,
    )
    try:
        yield h
    finally:
        await h.aclose()
