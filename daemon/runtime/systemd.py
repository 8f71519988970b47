"""sd_notify(3) without libsystemd: one datagram per message to `$NOTIFY_SOCKET`.

systemd sets `NOTIFY_SOCKET` for `Type=notify` units (a path, or `@name` for the abstract namespace) and
`WATCHDOG_USEC` (plus `WATCHDOG_PID`) when `WatchdogSec=` is set. Outside systemd (a terminal, a container)
both are unset and every call here does nothing. Nothing here raises: a lost notification must never stop
the daemon (systemd then times out or restarts it, which is the right outcome).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from daemon.logging import get_logger

log = get_logger(__name__)


def notify(*fields: str) -> bool:
    """Send `FIELD=value` lines (e.g. "READY=1", "STATUS=...") as one datagram; True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        return False  # vsock: addresses are not used for ticketd
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8", "replace"))
    except OSError as exc:
        log.warning("sd_notify failed", error=str(exc))
        return False
    return True


def reloading() -> bool:
    """`RELOADING=1` with the `MONOTONIC_USEC` that systemd 253+ needs for Type=notify-reload."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading the config")


def watchdog_interval() -> float | None:
    """Seconds between `WATCHDOG=1` pings (half of WatchdogSec=), or None when no watchdog applies to us."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (a wrapper that exec'd us would have kept its own pid)
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


async def watchdog(interval: float) -> None:
    """`WATCHDOG=1` every `interval` seconds from the event loop: a blocked or dead loop stops the pings."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog() -> asyncio.Task[None] | None:
    """The ping task on the running loop when systemd asked for a watchdog; cancel it on shutdown."""
    interval = watchdog_interval()
    if interval is None:
        return None
    log.info("systemd watchdog on", ping_every_s=interval)
    return asyncio.get_running_loop().create_task(watchdog(interval), name="sd-watchdog")
