"""`ticketd run` started the way deploy/systemd/ticketd.service starts it, with systemd's notify protocol.

The test plays systemd: it binds the notify socket, starts the unit's ExecStart (same arguments) with
NOTIFY_SOCKET, WATCHDOG_USEC and STATE_DIRECTORY set, and reads what the daemon reports: READY=1 once the
model is loaded and the API answers, WATCHDOG=1 pings, RELOADING=1 then READY=1 around SIGHUP (ExecReload),
STOPPING=1 and exit status 0 on SIGTERM (systemctl stop). A version promoted outside the process before
the SIGHUP (`ticketd models ... promote/rollback`, then `systemctl reload ticketd`) is served after it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from daemon.ml.store import ModelStore

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "ticketd.service"


def unit_value(key: str) -> str:
    """A key's (last) value in the unit file's [Service] section."""
    values = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]
    assert values, f"{key}= missing from {UNIT}"
    return values[-1]


def exec_start(config: Path) -> list[str]:
    """The unit's ExecStart with this checkout's venv for /opt/ticketd/venv and the test's config file."""
    argv = shlex.split(unit_value("ExecStart"))
    assert argv[0] == "/opt/ticketd/venv/bin/ticketd"
    assert argv[1:] == ["run", "--config", "/etc/ticketd/config.yaml"]
    ticketd = Path(sys.executable).parent / "ticketd"
    return [str(ticketd), *argv[1:-1], str(config)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NotifySocket:
    """systemd's side: a datagram socket that collects what the service sends."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sd-"))  # AF_UNIX paths: at most 107 bytes
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, field: str, timeout: float) -> dict[str, str]:
        """The next message with `field` set (earlier ones are kept in `messages`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(message)
            if field in message:
                return message
        raise AssertionError(f"no {field} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        self.dir.rmdir()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def write_config(tmp_path: Path, store: Path, port: int) -> Path:
    maildir = tmp_path / "maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp_path / 'state' / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": True, "host": "127.0.0.1", "port": port},
        "log": {"level": "info", "json": True},
        "connectors": [{"type": "maildir", "name": "mail", "path": str(maildir), "routing": {"poll_interval": 1}}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_unit_s_exec_start_speaks_sd_notify(tmp_path: Path, store: Path, notify_socket: NotifySocket) -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("ExecReload") == "/bin/kill -HUP $MAINPID"
    port = free_port()
    models = tmp_path / "models"
    shutil.copytree(store, models, symlinks=True)
    config = write_config(tmp_path, models, port)
    (tmp_path / "state").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC="1000000",  # WatchdogSec=1s: a ping every 0.5 s
        STATE_DIRECTORY=str(tmp_path / "state"),
    )
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(exec_start(config), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        ready = notify_socket.wait_for("READY", timeout=90)
        # READY=1 means: the model is loaded and the API answers.
        assert "model v1" in ready["STATUS"] and f"127.0.0.1:{port}" in ready["STATUS"], ready
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        readyz = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert readyz.status_code == 200, readyz.text

        for _ in range(2):
            notify_socket.wait_for("WATCHDOG", timeout=5)

        # An operator promotes another version with the CLI, then `systemctl reload ticketd`.
        staging = ModelStore(models).staging_dir()
        shutil.copytree(models / "current", staging, dirs_exist_ok=True)
        ModelStore(models).promote(ModelStore(models).add(staging))
        proc.send_signal(signal.SIGHUP)  # ExecReload
        reloading = notify_socket.wait_for("RELOADING", timeout=10)
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert "READY" not in reloading
        assert "model v2" in notify_socket.wait_for("READY", timeout=60)["STATUS"]
        notify_socket.wait_for("WATCHDOG", timeout=5)  # still pinging after the reload

        proc.send_signal(signal.SIGTERM)  # systemctl stop
        notify_socket.wait_for("STOPPING", timeout=10)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    order = [next(iter(m)) for m in notify_socket.messages if "WATCHDOG" not in m]
    assert order == ["READY", "RELOADING", "READY", "STOPPING"], (order, (tmp_path / "daemon.log").read_text())
