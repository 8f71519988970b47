"""A real Dovecot for the IMAP connector's tests: one server per test process, a fresh user per test.

Starting Dovecot takes about a second, creating a user a millisecond: so the server is shared and
every test gets its own account (its own empty mailbox). Without `dovecot` installed the tests are
skipped, never faked: `apt-get install -y dovecot-imapd` (Debian/Ubuntu).

`FlakyProxy` sits between connector and server so a test can make the next connections fail the
way a dying server does (connection accepted, then dropped) without stopping the shared Dovecot.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import itertools
import os
import pwd
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]

from tests.support.servers import free_port, unavailable

TEMPLATE = Path(__file__).with_name("dovecot.conf.template")
# Dovecot 2.3's own list less IDLE: what a server without RFC 2177 advertises.
NO_IDLE = (
    "\nimap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
    "BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE\n"
)
PASSWORD = "s3cret"


def _tool(name: str) -> str | None:
    """Dovecot lives in /usr/sbin, which an unprivileged user's PATH often lacks."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/sbin")


def missing_reason() -> str | None:
    """Why a real Dovecot cannot run here, or None when it can."""
    for tool in ("dovecot", "doveadm"):
        if _tool(tool) is None:
            return f"{tool!r} is not installed (apt-get install -y dovecot-imapd)"
    return None


def _wait_for_greeting(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"dovecot did not greet on port {port}")
        time.sleep(0.05)


class Dovecot:
    """One running Dovecot under `root`, plain IMAP on 127.0.0.1:`port`, users from a passwd file."""

    def __init__(self, root: Path, extra: str = "") -> None:
        self.root = root
        self.extra = extra  # more dovecot.conf lines (a capability list, say)
        self.port = free_port()
        self.conf = root / "dovecot.conf"
        self.users = root / "users"
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._pool: list[str] = []
        self._started = False

    def start(self) -> Dovecot:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        text = TEMPLATE.read_text().replace("@DIR@", str(self.root)).replace("@PORT@", str(self.port))
        text += self.extra
        if os.geteuid() == 0:
            shutil.chown(self.root / "mail", "nobody", "nogroup")
            # Dovecot's unprivileged processes must be able to reach the tmp dir.
            for parent in [self.root, *self.root.parents]:
                if parent == Path(tempfile.gettempdir()).parent:
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        else:
            text = _unprivileged(text)
        self.conf.write_text(text)
        self.users.write_text("")
        self._add_users(200)
        # The daemonized master keeps inherited pipes open: send its output to a file, not a pipe.
        with (self.root / "start.out").open("w+") as out:
            code = subprocess.call(
                [_tool("dovecot") or "dovecot", "-c", str(self.conf)], stdout=out, stderr=out, timeout=30
            )
            if code != 0:
                out.seek(0)
                raise RuntimeError(f"dovecot failed to start: {out.read().strip()} (log: {self.log()[-2000:]})")
        _wait_for_greeting(self.port, time.monotonic() + 15)
        self._started = True
        return self

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        subprocess.run(
            [_tool("doveadm") or "doveadm", "-c", str(self.conf), "stop"], capture_output=True, timeout=15, check=False
        )
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    def new_user(self) -> str:
        """A fresh account with an empty mailbox, so tests never see each other's mail."""
        # Dovecot re-reads the passwd file at most once a second: users are written in batches.
        with self._lock:
            if not self._pool:
                self._add_users(200)
                if self._started:
                    time.sleep(1.1)
            return self._pool.pop(0)

    def _add_users(self, count: int) -> None:
        tag = secrets.token_hex(3)
        names = [f"helpdesk{next(self._names)}-{tag}" for _ in range(count)]
        with self.users.open("a") as f:
            f.writelines(f"{name}:{{PLAIN}}{PASSWORD}\n" for name in names)
        self._pool.extend(names)

    def client(self, user: str) -> IMAPClient:
        """A logged-in connection straight to the server (the human/customer side, not the connector)."""
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, PASSWORD)
        return c

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _unprivileged(text: str) -> str:
    """Run every Dovecot process as the current user (no root, no chroot)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    text = text.replace("uid=nobody gid=nogroup", f"uid={os.geteuid()} gid={os.getegid()}")
    return (
        text
        + f"\ndefault_login_user = {user}\ndefault_internal_user = {user}\ndefault_internal_group = {group}\n"
        + f"service imap-login {{\n  chroot =\n  user = {user}\n}}\n"
        + f"service anvil {{\n  chroot =\n}}\nservice auth {{\n  user = {user}\n}}\n"
    )


_shared: Dovecot | None = None
_shared_lock = threading.Lock()


def shared_dovecot() -> Dovecot:
    """The process-wide server, started on first use and stopped when the test process exits."""
    global _shared
    reason = missing_reason()
    if reason:
        unavailable(f"no real Dovecot: {reason}")
    with _shared_lock:
        if _shared is None:
            root = Path(tempfile.mkdtemp(prefix="ticketd-dovecot-"))
            server = Dovecot(root).start()
            atexit.register(_stop_shared, server)
            _shared = server
        return _shared


def _stop_shared(server: Dovecot) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Dovecot:
    """The shared Dovecot (skips the test when it is not installed)."""
    return shared_dovecot()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A fresh account per test, so tests never see each other's mail."""
    return dovecot.new_user()


_SOURCE_NUMBERS = itertools.count(2 << 16)  # next() on a count is atomic under the GIL; a generator is not


def _next_source() -> tuple[str, int]:
    n = next(_SOURCE_NUMBERS) % (250 << 16)
    return (f"127.{(n >> 16) + 2}.{n >> 8 & 255}.{(n & 255) % 254 + 1}", 0)


class FlakyProxy:
    """A TCP relay to Dovecot (or another loopback server) that can drop the next N connections after accepting.

    `fresh_sources`: each relayed connection comes from a loopback address of its own (Dovecot's auth penalty
    is per client address); off for servers that only admit 127.0.0.1 (PostgreSQL's pg_hba.conf).
    """

    def __init__(self, target_port: int, *, fresh_sources: bool = True) -> None:
        self.target_port = target_port
        self.fresh_sources = fresh_sources
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._fail = 0
        self._cut_at: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._serve, name="flaky-proxy", daemon=True)
        self._thread.start()

    def fail_next(self, connections: int) -> None:
        with self._lock:
            self._fail += connections

    def cut_at(self, command: bytes) -> None:
        """Drop the next connection whose client sends `command` (b" LOGIN "), before the server sees it."""
        with self._lock:
            self._cut_at.append(command)

    def _cuts(self, data: bytes) -> bool:
        with self._lock:
            for command in self._cut_at:
                if command in data:
                    self._cut_at.remove(command)
                    return True
        return False

    def heal(self) -> None:
        """Relay new connections again (after `fail_next`)."""
        with self._lock:
            self._fail = 0

    def cut(self) -> None:
        """Drop every relayed connection now, as a restarted server or a NAT box would."""
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                drop = self._fail > 0
                self._fail -= int(drop)
            if drop:
                conn.close()  # accepted, then dropped before the greeting: EOF for the client
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            # A fresh loopback source address per connection: Dovecot's auth penalty is kept per
            # client address (after two failed logins the next one from there waits 4-6 s), and
            # tests fail logins on purpose; other tests must not inherit the delay.
            source = _next_source() if self.fresh_sources else ("127.0.0.1", 0)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10, source_address=source)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.add(client)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._closed:
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data or (key.fileobj is client and self._cuts(data)):
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.discard(client)
            sel.close()
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@contextlib.contextmanager
def connected(server: Dovecot, user: str) -> Iterator[IMAPClient]:
    """A short-lived direct connection, logged out afterwards."""
    c = server.client(user)
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.logout()
