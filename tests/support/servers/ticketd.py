"""`ticketd serve` in a process of its own, started as an admin starts it, for the tests that need real HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.paths import ROOT
from tests.support.servers import free_port, stop


@dataclass(frozen=True)
class Served:
    """A running `ticketd serve`: where it answers, its process id (for its memory) and its log."""

    url: str
    port: int
    pid: int
    log: Path


def serve_config(tmp_path: Path, api: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A config for `serve`: the given api section on a free loopback port, SQLite state, an unused Maildir."""
    (tmp_path / "maildir").mkdir(exist_ok=True)
    return {
        "model": {"store": str(tmp_path / "models"), "threads": 1},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"host": "127.0.0.1", "port": free_port(), **api},
        "log": {"level": "info", "json": True},
        "connectors": [{"type": "maildir", "name": "unused", "path": str(tmp_path / "maildir")}],
        **sections,
    }


@contextlib.contextmanager
def ticketd_serve(tmp_path: Path, config: dict[str, Any], *, ready: str = "/healthz") -> Iterator[Served]:
    """`python -m daemon serve --config` until `ready` answers 200; SIGTERM (then a kill) when the block ends."""
    path, log = tmp_path / "serve.yaml", tmp_path / "serve.log"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = int(config["api"]["port"])
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "serve", "--config", str(path)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while not _answers(f"{url}{ready}"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")[-3000:]
            time.sleep(0.2)
        yield Served(url, port, proc.pid, log)
    finally:
        stop(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
