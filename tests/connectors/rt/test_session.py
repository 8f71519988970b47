"""RT checks a password or token with bcrypt on every REST 2 call: with user and password the connector logs in
once and rides RT's web session, and a session RT ended costs speed, never a failed call."""

from __future__ import annotations

import httpx
import pytest

from connectors.base import Applied, TicketUpdate
from connectors.errors import AuthError
from connectors.rt import client as rt_client
from tests.support.backends.rt import FakeRTHarness
from tests.support.fakes.rt import FakeRT

pytestmark = pytest.mark.anyio


async def _work(harness: FakeRTHarness) -> int:
    """A check, a poll that reads two tickets, and a write-back: the calls a short run makes."""
    ids = [harness.add_ticket(f"Ticket {i}", f"body {i}") for i in range(2)]
    conn = await harness.connector()
    before = len(harness.fake.requests)
    await conn.check()
    await conn.fetch_new(None, 10)
    update = TicketUpdate(ids[0], expected_queue=harness.inbound, queue=harness.target, note="ticketd: routed")
    assert isinstance(await conn.apply(update), Applied)
    return len(harness.fake.requests) - before


async def test_a_password_is_checked_once_per_session_not_per_call() -> None:
    harness = FakeRTHarness(FakeRT(), token=False)
    try:
        calls = await _work(harness)
        assert calls > 15
        assert harness.fake.password_checks == 1  # the login; every REST call rode the session cookie
        logins = [r for r in harness.fake.requests if r.path == rt_client.LOGIN]
        assert len(logins) == 1
        assert harness.queue_of("1") == harness.target
    finally:
        await harness.aclose()


async def test_a_token_is_checked_on_every_call() -> None:
    harness = FakeRTHarness(FakeRT(), token=True)
    try:
        calls = await _work(harness)
        assert harness.fake.password_checks == calls  # nothing to log in with: RT's bcrypt per call
        assert not [r for r in harness.fake.requests if r.path == rt_client.LOGIN]
    finally:
        await harness.aclose()


async def test_a_session_rt_ended_falls_back_to_the_password_then_logs_in_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = FakeRTHarness(FakeRT(), token=False)
    clock = [1000.0]
    monkeypatch.setattr(rt_client.time, "monotonic", lambda: clock[0])
    try:
        tid = harness.add_ticket("Printer jam", "Tray 2 jams.")
        conn = await harness.connector()
        await conn.check()
        assert harness.fake.password_checks == 1
        harness.fake.end_sessions()
        ticket = await conn.fetch_ticket(tid)  # the cookie no longer counts: RT takes the password instead
        assert ticket is not None and ticket.subject == "Printer jam"
        checks = harness.fake.password_checks
        assert checks > 1
        clock[0] += rt_client.SESSION_MAX_AGE
        await conn.fetch_ticket(tid)
        assert harness.fake.password_checks == checks + 1  # one new login, then the session again
        await conn.fetch_ticket(tid)
        assert harness.fake.password_checks == checks + 1
    finally:
        await harness.aclose()


async def test_a_wrong_password_gets_no_session_and_an_auth_error() -> None:
    harness = FakeRTHarness(FakeRT(), token=False)
    try:
        conn = await harness.connector(bad_auth=True)
        with pytest.raises(AuthError):
            await conn.check()  # RT's login form answers 200 with an anonymous cookie: it is not taken
    finally:
        await harness.aclose()


async def test_the_session_cookie_stays_out_of_a_shared_client() -> None:
    fake = FakeRT()
    harness = FakeRTHarness(fake, token=False)
    async with httpx.AsyncClient(transport=fake.transport()) as shared:
        conn = type(await harness.connector()).from_config(harness.config(), shared)
        await conn.check()
        assert fake.password_checks == 1
        assert not [name for name in shared.cookies if name.startswith("RT_SID_")]
    await harness.aclose()


async def test_an_ended_session_and_a_changed_password_is_an_auth_error_then_a_fresh_login() -> None:
    """RT answers a caller with a cookie as a browser (302 "Login required"), never 401: that is no network fault."""
    harness = FakeRTHarness(FakeRT(), token=False)
    try:
        tid = harness.add_ticket("VPN down", "Nobody can connect.")
        conn = await harness.connector()
        await conn.check()
        harness.fake.end_sessions()
        harness.fake.passwords["ticketd"] = "changed-by-an-admin"
        with pytest.raises(AuthError, match="RT wants a login"):
            await conn.fetch_ticket(tid)
        harness.fake.passwords["ticketd"] = harness.settings()["password"]  # the admin puts it back
        checks = harness.fake.password_checks
        assert (await conn.fetch_ticket(tid)) is not None
        assert harness.fake.password_checks == checks + 1  # logged in again at once, not after 10 minutes
    finally:
        await harness.aclose()
