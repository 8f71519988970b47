"""IMAP IDLE against a real Dovecot: renewed before the server's timeout, absent IDLE, a dropped connection."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from connectors.errors import TransientError
from connectors.imap import ImapConnector
from connectors.imap.idle import IdleWatch
from tests.support.backends.imap import ImapHarness
from tests.support.fakes.dovecot import NO_IDLE, Dovecot

pytestmark = pytest.mark.anyio


async def test_idle_is_renewed_before_the_server_times_out_and_still_reports_new_mail(h: ImapHarness) -> None:
    watch = await ImapConnector(h.config(idle_renew=0.3)).watch()
    assert isinstance(watch, IdleWatch)
    try:
        assert await watch.wait(1.2) is False
        assert watch.renewals >= 3  # DONE + IDLE every 0.3 s, on the same connection
        h.add_ticket("After renewals", "Mail that arrives on a renewed IDLE.")
        started = time.monotonic()
        assert await watch.wait(5) is True
        assert time.monotonic() - started < 2
    finally:
        await watch.aclose()


async def test_a_server_without_idle_gets_no_watch_so_the_daemon_polls() -> None:
    root = Path(tempfile.mkdtemp(prefix="ticketd-dovecot-noidle-"))
    server = Dovecot(root, extra=NO_IDLE).start()
    try:
        h = ImapHarness(server)
        try:
            conn = ImapConnector(h.config())
            await conn.check()  # the mailbox itself works
            assert await conn.watch() is None
        finally:
            await h.aclose()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_a_dropped_idle_connection_is_a_transient_error_not_a_hang(h: ImapHarness) -> None:
    watch = await ImapConnector(h.config()).watch()
    assert watch is not None
    try:
        waiting = asyncio.create_task(watch.wait(30))
        await asyncio.sleep(0.3)
        h.proxy.cut()
        with pytest.raises(TransientError, match=r"imap 127\.0\.0\.1"):
            await asyncio.wait_for(waiting, 5)
    finally:
        await watch.aclose()
