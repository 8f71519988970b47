"""Real servers the suite starts for itself (Znuny, ...), and the one rule for when one cannot start."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip where a real server is missing, but fail in CI, so a broken CI image never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"a real server the tests need cannot be started in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def pg_bin(name: str) -> str | None:
    """Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH: the newest version there."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else shutil.which(name)


def has_user(name: str) -> bool:
    """Whether a system account exists (servers run as postgres or www-data, never as root)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, as systemd stops a service; SIGKILL if it has not exited within `timeout` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
