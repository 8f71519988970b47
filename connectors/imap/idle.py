"""IMAP IDLE (RFC 2177) on the inbound folder: the server tells us about new mail instead of being asked.

One connection of its own, read-only on the inbound folder, kept in IDLE. RFC 2177 lets a server drop a
client that idles for 30 minutes, so the IDLE is ended and issued again every `idle_renew` seconds (default
10 minutes, well inside that and inside common NAT timeouts). The blocking imapclient calls run in a
worker thread; `aclose` shuts the socket down, so a wait under way returns at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import anyio.to_thread
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError

from connectors.base import Watch
from connectors.imap.client import close_quietly, open_client, translated
from connectors.imap.config import ImapConfig

# Untagged responses that mean mail arrived; EXPUNGE and FETCH (flag changes) are not new work.
_NEW_MAIL = (b"EXISTS", b"RECENT")


def _arrived(responses: list[object]) -> bool:
    return any(isinstance(r, tuple) and len(r) >= 2 and r[1] in _NEW_MAIL for r in responses)


class IdleWatch(Watch):
    """IDLE on `folder`; `renewals` counts the re-issued IDLEs (for tests and the debug log)."""

    def __init__(self, config: ImapConfig, folder: str, client: IMAPClient) -> None:
        self._config = config
        self._folder = folder
        self._client = client
        self._lock = threading.Lock()  # one thread uses the connection at a time
        self._closed = False
        self._since = 0.0
        self.renewals = 0

    @classmethod
    def open(cls, config: ImapConfig, folder: str) -> IdleWatch | None:
        """Blocking: log in, select, start IDLE; None (connection closed) when the server lacks IDLE."""
        with translated(config):
            client = open_client(config)
            try:
                if not client.has_capability("IDLE"):
                    close_quietly(client)
                    return None
                client.select_folder(folder, readonly=True)
                watch = cls(config, folder, client)
                client.idle()
                watch._since = time.monotonic()
            except BaseException:
                close_quietly(client)
                raise
            return watch

    async def wait(self, timeout: float) -> bool:
        return await anyio.to_thread.run_sync(self._wait, timeout)

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock, translated(self._config):
            while not self._closed:
                now = time.monotonic()
                if now - self._since >= self._config.idle_renew:
                    _, during = self._client.idle_done()
                    self._client.idle()
                    self._since = time.monotonic()
                    self.renewals += 1
                    if _arrived(during):  # mail that came in while IDLE was being renewed
                        return True
                    continue
                left = min(deadline, self._since + self._config.idle_renew) - now
                if deadline - now <= 0:
                    return False
                try:
                    responses = self._client.idle_check(timeout=max(left, 0.01))
                    if not responses and time.monotonic() - now < left:
                        self._check_open()  # woken early with nothing to read: the server may have hung up
                except Exception:
                    if self._closed:
                        return False
                    raise
                if _arrived(responses):
                    return True
        return False

    def _check_open(self) -> None:
        """imapclient's idle_check swallows EOF and returns nothing, so look at the socket ourselves."""
        try:
            if self._client.socket().recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                raise IMAPClientAbortError("the server closed the IDLE connection")
        except (BlockingIOError, InterruptedError):
            return  # nothing to read yet: the connection is alive

    async def aclose(self) -> None:
        self._closed = True
        # Wakes a thread blocked in idle_check: it sees EOF, finds the watch closed and returns.
        with contextlib.suppress(OSError):
            self._client.socket().shutdown(socket.SHUT_RDWR)
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            close_quietly(self._client)
