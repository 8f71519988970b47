"""daemon.runtime.systemd: the sd_notify client (datagrams to $NOTIFY_SOCKET) and the watchdog interval."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.runtime import systemd


@pytest.fixture
def receiver() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket on a filesystem path, as systemd's notify socket is."""
    folder = Path(tempfile.mkdtemp(prefix="sdn-"))  # short: AF_UNIX paths are limited to 107 bytes
    path = folder / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield sock, str(path)
    finally:
        sock.close()
        path.unlink()
        folder.rmdir()


def test_sends_fields_as_one_datagram(receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify("READY=1", "STATUS=model v1") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=model v1"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"ticketd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_unset_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.reloading() is False


@pytest.mark.parametrize("address", ["/nonexistent/ticketd/notify", "@ticketd-nobody-listens-here", "vsock:2:1234"])
def test_unreachable_socket_never_raises(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert systemd.notify("READY=1") is False


def test_reloading_carries_the_monotonic_clock(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.reloading()
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert abs(int(fields["MONOTONIC_USEC"]) - int(time.monotonic() * 1_000_000)) < 5_000_000


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("1000000", None, 0.5),
        ("60000000", "self", 30.0),
        ("60000000", "1", None),  # systemd meant another process
        ("0", None, None),
        ("", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval(usec: str, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert systemd.watchdog_interval() == expected


def test_watchdog_task_pings_until_cancelled(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    async def main() -> None:
        task = systemd.start_watchdog()
        assert task is not None
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(main())
    pings = []
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        while True:
            pings.append(sock.recv(4096))
    assert len(pings) >= 3
    assert set(pings) == {b"WATCHDOG=1"}


def test_no_watchdog_task_without_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    async def main() -> asyncio.Task[None] | None:
        return systemd.start_watchdog()

    assert asyncio.run(main()) is None
